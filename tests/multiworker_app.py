"""A FastAPI app whose lifespan runs one workflow, for serving under several uvicorn workers.

Its service records which process did each item, in the item's own transaction.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from curate import Workflow
from curate.contrib.fastapi import curate_lifespan
from tests.models import Effect, Item


async def process_single_work(item_id: Any, session: AsyncSession) -> None:
    session.add(Effect(item_id=item_id, note=f"pid {os.getpid()}"))


work = Workflow("work", model=Item, service=process_single_work, interval_seconds=30)

app = FastAPI(lifespan=curate_lifespan([work]))
