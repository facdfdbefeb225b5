"""The photos app: FastAPI, with curate started and stopped by its lifespan helper."""

import os
import secrets
from collections.abc import AsyncIterator
from typing import Annotated, Any

import curate
from curate.contrib.fastapi import curate_lifespan, curate_router
from fastapi import Depends, FastAPI, HTTPException
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from sqlalchemy.ext.asyncio import AsyncSession

from photos.models import CurationStatus, Photo
from photos.services.curation_service import set_curation_status
from photos.services.thumbnail_scheduler import thumbnail_workflow

WORKFLOWS = [thumbnail_workflow]

# Settings from CURATE_* at start-up; each workflow scheduled, then the scheduler started.
# At shutdown: no new claims, running items get the grace period, connections closed.
app = FastAPI(lifespan=curate_lifespan(WORKFLOWS))

basic = HTTPBasic()


def require_admin(credentials: Annotated[HTTPBasicCredentials, Depends(basic)]) -> None:
    """Only the admin reads curate's figures and re-queues rows. HTTP Basic: a browser
    asks once, then sends it with the dashboard's requests; curl takes -u admin:..."""
    password = os.environ.get("PHOTOS_ADMIN_PASSWORD", "").encode()
    admin = secrets.compare_digest(credentials.username.encode(), b"admin")
    if not (password and admin and secrets.compare_digest(credentials.password.encode(), password)):
        raise HTTPException(
            status_code=401,
            detail="admin password required",
            headers={"WWW-Authenticate": "Basic"},
        )


# GET /curate/workflows, .../{name}, .../{name}/items/{id}, /curate/dashboard (admin);
# POST .../{name}/requeue, /pause, /resume (admin, JSON, from this site's pages only).
# Error texts shown there have e-mail addresses and tokens masked (redact_error=).
app.include_router(
    curate_router(WORKFLOWS, read_auth=require_admin, requeue_auth=require_admin),
    prefix="/curate",
)


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
