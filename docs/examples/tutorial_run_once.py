"""Tutorial: queue photos through their curation status, run the workflow once, look."""

import asyncio

import curate
from curate.db.own_tables import create_own_tables
from sqlalchemy import insert, select

from photos.models import Base, CurationStatus, Photo
from photos.services.curation_service import set_curation_status
from photos.services.thumbnail_scheduler import thumbnail_workflow

PHOTOS = [
    {"id": 1, "url": "https://example.org/cat.jpg", "width": 1024, "height": 768},
    {"id": 2, "url": "https://example.org/dog.jpg", "width": 600, "height": 900},
    {"id": 3, "url": "https://example.org/broken.jpg", "width": 0, "height": 0},
    {"id": 4, "url": "https://example.org/blurry.jpg", "width": 800, "height": 600},
]


async def main(settings: curate.CurateSettings | None = None) -> None:
    runtime = curate.configure(settings)  # None: CURATE_* variables and .env
    engine = await runtime.database.engine()
    async with engine.begin() as conn:  # the tutorial starts afresh; apps use migrations
        await conn.run_sync(Base.metadata.drop_all)
        await conn.run_sync(Base.metadata.create_all)
        await create_own_tables(conn)  # curate's own tables; in an app, a migration

    sessionmaker = await runtime.database.sessionmaker()
    async with sessionmaker() as session, session.begin():
        await session.execute(insert(Photo), PHOTOS)
        await set_curation_status(session, [1, 2, 3], CurationStatus.Selected)
        await set_curation_status(session, [4], CurationStatus.Rejected)

    result = await thumbnail_workflow.run()
    print(f"claimed {result.claimed}: {result.completed} complete, {result.failed} failed")

    print("id  curation  thumbnail  attempts  thumb   error")
    async with sessionmaker() as session:
        for photo in await session.scalars(select(Photo).order_by(Photo.id)):
            thumb = f"{photo.thumb_width}x{photo.thumb_height}" if photo.thumb_width else ""
            line = (
                f"{photo.id:>2}  {photo.curation_status:<9} {photo.thumbnail_status or '-':<10}"
                f" {photo.thumbnail_attempts:>8}  {thumb:<7} {photo.thumbnail_error or ''}"
            )
            print(line.rstrip())
    await runtime.database.dispose()


if __name__ == "__main__":
    curate.configure_logging()
    asyncio.run(main())
