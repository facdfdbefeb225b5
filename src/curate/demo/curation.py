"""The dual-status pattern: selecting a row queues it for its workflow, atomically.

A person (or a rule) sets the curation status; the workflow's processing status follows
in the same transaction, so a row is never Selected without being queued, nor queued
without being Selected.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from curate import Workflow
from curate.demo.models import CurationStatus


async def select_and_queue(session: AsyncSession, workflow: Workflow, ids: Sequence[Any]) -> None:
    """Mark rows of ``workflow``'s table Selected and queue them, in the caller's transaction."""
    if not ids:
        return
    model = workflow.model
    await session.execute(
        update(model).where(model.id.in_(ids)).values(curation_status=CurationStatus.Selected)
    )
    await workflow.queue(session, ids)
