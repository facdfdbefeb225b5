"""Tutorial: the same workflow on the shared scheduler, as an app runs it."""

import asyncio

import curate
from curate import ProcessingStatus
from curate.db.own_tables import create_own_tables
from curate.scheduling import shutdown_scheduler, start_scheduler
from sqlalchemy import func, insert, select

from photos.models import Base, CurationStatus, Photo
from photos.services.curation_service import set_curation_status
from photos.services.thumbnail_scheduler import setup_thumbnail_scheduler

PHOTOS = [
    {"id": n, "url": f"https://example.org/{n}.jpg", "width": 640, "height": 480}
    for n in range(1, 101)
]


async def main(settings: curate.CurateSettings | None = None) -> None:
    runtime = curate.configure(settings)
    engine = await runtime.database.engine()
    async with engine.begin() as conn:  # the tutorial starts afresh; apps use migrations
        await conn.run_sync(Base.metadata.drop_all)
        await conn.run_sync(Base.metadata.create_all)
        await create_own_tables(conn)  # curate's own tables; in an app, a migration
    sessionmaker = await runtime.database.sessionmaker()
    async with sessionmaker() as session, session.begin():
        await session.execute(insert(Photo), PHOTOS)
        await set_curation_status(session, [p["id"] for p in PHOTOS], CurationStatus.Selected)

    setup_thumbnail_scheduler()  # at start-up, one call per workflow
    start_scheduler()  # the first run starts now, then every interval_seconds
    try:
        while True:  # an app would serve requests here; this script waits for the work
            async with sessionmaker() as session:
                waiting = await session.scalar(
                    select(func.count()).where(
                        Photo.thumbnail_status.in_(
                            [ProcessingStatus.Queued, ProcessingStatus.Processing]
                        )
                    )
                )
            if waiting == 0:
                break
            await asyncio.sleep(0.2)
    finally:
        await shutdown_scheduler()  # stops claiming, waits for running runs
        await runtime.database.dispose()
    stats = runtime.stats["thumbnail"]
    print(f"{stats.completed} complete, {stats.failed} failed")


if __name__ == "__main__":
    curate.configure_logging()
    asyncio.run(main())
