"""Tests of the photos app's thumbnail workflow, run to the end inside each test."""

from datetime import timedelta

from curate import ProcessingStatus
from curate.testing import FailedRow, WorkflowHarness
from sqlalchemy import insert

from photos.models import CurationStatus, Photo
from photos.services.curation_service import set_curation_status
from photos.services.thumbnail_scheduler import setup_thumbnail_scheduler, thumbnail_workflow

CAT = {"id": 1, "url": "https://example.org/cat.jpg", "width": 1024, "height": 768}
BROKEN = {"id": 2, "url": "https://example.org/broken.jpg", "width": 0, "height": 0}


# docs: start drain
async def test_selected_photos_get_a_thumbnail(curate_harness: WorkflowHarness) -> None:
    sessionmaker = await curate_harness.runtime.database.sessionmaker()
    async with sessionmaker() as session, session.begin():
        await session.execute(insert(Photo), [CAT, BROKEN])
        await set_curation_status(session, [1, 2], CurationStatus.Selected)

    result = await curate_harness.drain(thumbnail_workflow)

    assert (result.completed, result.failed) == (1, 1)
    assert await curate_harness.complete(thumbnail_workflow) == [1]
    assert await curate_harness.failed(thumbnail_workflow) == [
        FailedRow(id=2, error="NonRetryableError: photo 2 has no size (0x0)")
    ]
    async with sessionmaker() as session:
        photo = await session.get(Photo, 1)
        assert photo is not None
        assert (photo.thumb_width, photo.thumb_height) == (128, 96)


# docs: end drain


# docs: start run-pending
async def test_every_workflow_runs_to_the_end(curate_harness: WorkflowHarness) -> None:
    setup_thumbnail_scheduler()  # registers the workflow; the scheduler is not started
    sessionmaker = await curate_harness.runtime.database.sessionmaker()
    async with sessionmaker() as session, session.begin():
        await session.execute(insert(Photo), [CAT])
        await set_curation_status(session, [1], CurationStatus.Selected)

    results = await curate_harness.run_pending()

    assert results["thumbnail"].completed == 1
    assert await curate_harness.queued(thumbnail_workflow) == []


# docs: end run-pending


# docs: start time
async def test_a_photo_queued_for_tomorrow_runs_tomorrow(curate_harness: WorkflowHarness) -> None:
    now = curate_harness.freeze_time()
    sessionmaker = await curate_harness.runtime.database.sessionmaker()
    async with sessionmaker() as session, session.begin():
        due_tomorrow = {
            "thumbnail_status": ProcessingStatus.Queued,
            "thumbnail_run_after": now + timedelta(days=1),
        }
        await session.execute(insert(Photo), [CAT | due_tomorrow])

    assert (await curate_harness.drain(thumbnail_workflow)).claimed == 0
    assert await curate_harness.queued(thumbnail_workflow) == [1]

    curate_harness.advance_time(days=1)
    assert (await curate_harness.drain(thumbnail_workflow)).completed == 1


# docs: end time
