"""The app the cancel tests run in worker processes (``CURATE_APP=tests.cancel_app:WORKFLOWS``):
one workflow whose service writes an effect in its own transaction, logs its start apart
from it, then waits until it is cancelled (it never returns on its own)."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from curate import Workflow
from tests.executions import ExecutionTable
from tests.models import Effect, Item

executions = ExecutionTable(Item, "work")


async def wait_until_cancelled(item_id: Any, session: AsyncSession) -> None:
    session.add(Effect(item_id=item_id, note="written before the cancel"))
    await session.flush()  # the effect is in the item's transaction, not yet committed
    await executions.record(session, item_id)
    await asyncio.Event().wait()


work = Workflow("work", model=Item, service=wait_until_cancelled, interval_seconds=0.5)
WORKFLOWS = [work]
