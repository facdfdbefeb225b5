"""Create the photos table's sample rows: ``python -m photoapp.sample_data``.

The database is curate's: CURATE_DATABASE_URL, or the embedded PostgreSQL when unset.
"""

import asyncio

from curate import configure

from photoapp.models import Photo

SAMPLES = [
    "https://example.org/cat.jpg",
    "https://example.org/dog.jpg",
    "https://example.org/owl.png",
]


async def add_samples() -> None:
    runtime = configure()
    sessions = await runtime.database.sessionmaker()
    async with sessions() as session, session.begin():
        session.add_all(Photo(url=url) for url in SAMPLES)
    await runtime.close()
    print(f"added {len(SAMPLES)} photos")


if __name__ == "__main__":
    asyncio.run(add_samples())
