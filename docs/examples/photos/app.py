"""The photos app: FastAPI, with curate started and stopped by the lifespan."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import curate
from curate.scheduling import shutdown_scheduler, start_scheduler
from fastapi import Depends, FastAPI, HTTPException
from sqlalchemy.ext.asyncio import AsyncSession

from photos.models import CurationStatus, Photo
from photos.services.curation_service import set_curation_status
from photos.services.thumbnail_scheduler import setup_thumbnail_scheduler


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    runtime = curate.configure(curate.CurateSettings())  # bad settings stop the start here
    setup_thumbnail_scheduler()  # one setup call per workflow
    start_scheduler()
    try:
        yield
    finally:
        await shutdown_scheduler()  # stop claiming, let running runs finish
        await runtime.close()


app = FastAPI(lifespan=lifespan)


async def get_session() -> AsyncIterator[AsyncSession]:
    """A session on curate's engine; an app with its own engine uses that instead."""
    sessionmaker = await curate.get_runtime().database.sessionmaker()
    async with sessionmaker() as session:
        yield session


Session = Annotated[AsyncSession, Depends(get_session)]


@app.get("/photos/{photo_id}")
async def read_photo(photo_id: int, session: Session) -> dict[str, Any]:
    photo = await session.get(Photo, photo_id)
    if photo is None:
        raise HTTPException(status_code=404, detail=f"no photo {photo_id}")
    return {
        "id": photo.id,
        "curation_status": photo.curation_status,
        "thumbnail_status": photo.thumbnail_status,
        "thumbnail_error": photo.thumbnail_error,
        "thumbnail_attempts": photo.thumbnail_attempts,
        "thumbnail": [photo.thumb_width, photo.thumb_height],
    }


@app.put("/photos/{photo_id}/curation-status")
async def put_curation_status(
    photo_id: int, status: CurationStatus, session: Session
) -> dict[str, Any]:
    """Setting Selected queues the thumbnail, in the request's transaction."""
    async with session.begin():
        if await session.get(Photo, photo_id) is None:
            raise HTTPException(status_code=404, detail=f"no photo {photo_id}")
        await set_curation_status(session, [photo_id], status)
    return {"id": photo_id, "curation_status": status}
