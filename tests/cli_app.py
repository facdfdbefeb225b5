"""The app the CLI tests point ``CURATE_APP`` at: two workflows over the tables of
tests/models.py, one with every curate column and one seed-style (status and error only).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from curate import ColumnNames, NonRetryableError, Statuses, Workflow
from tests.models import Item, SeedItem, SeedStatus


async def process_single_work(item_id: Any, session: AsyncSession) -> None:
    """Fails for items whose payload starts with "fail"; the others just complete."""
    item = await session.get(Item, item_id)
    if item is not None and item.payload.startswith("fail"):
        raise NonRetryableError(item.payload)


async def process_single_seed(item_id: Any, session: AsyncSession) -> None:
    """Nothing to do: the row completes."""


work = Workflow("work", model=Item, service=process_single_work)
seed = Workflow(
    "seed",
    model=SeedItem,
    service=process_single_seed,
    statuses=Statuses(
        queued=SeedStatus.queued,
        processing=SeedStatus.processing,
        complete=SeedStatus.complete,
        failed=SeedStatus.error,
    ),
    columns=ColumnNames(status="status", error="error"),
)

WORKFLOWS = [work, seed]
