"""A FastAPI app whose lifespan runs one workflow, for serving under several uvicorn workers.

Its service records which process did each item, in the item's own transaction, and
each of its starts in the table ``executions``, apart from it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from curate import Workflow
from curate.contrib.fastapi import curate_lifespan
from tests.executions import ExecutionTable
from tests.models import Effect, Item

executions = ExecutionTable(Item, "work")


async def process_single_work(item_id: Any, session: AsyncSession) -> None:
    await executions.record(session, item_id)
    session.add(Effect(item_id=item_id, note=f"pid {os.getpid()}"))


work = Workflow("work", model=Item, service=process_single_work, interval_seconds=30)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with curate_lifespan([work])(app):
        yield
    await executions.close()


app = FastAPI(lifespan=lifespan)
