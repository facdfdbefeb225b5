"""The app the fan-in tests run, in the test's process and in worker processes
(``CURATE_APP=tests.fan_in_app:WORKFLOWS``): folders gathered, then their files scanned,
then each folder finalised once all its files are done.

With ``FAN_IN_SIBLING_BARRIER`` set, a file's scan waits (up to 30 s) until every file of
its folder has started: the last two files of a folder then finish together, on two
workers, as the race test needs.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Integer, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from curate import Workflow, workflow_mixin
from curate.fan_in import Children
from curate.migrations import create_fan_in
from tests.executions import EXECUTIONS, ExecutionTable


class Base(DeclarativeBase):
    pass


class Folder(workflow_mixin("gather"), workflow_mixin("finalise"), Base):  # type: ignore[misc]
    __tablename__ = "folders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    files_done: Mapped[int | None] = mapped_column(Integer)
    finalised_times: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    updated_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class File(workflow_mixin("scan"), Base):  # type: ignore[misc]
    __tablename__ = "files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    folder_id: Mapped[int] = mapped_column(Integer, index=True)


scans = ExecutionTable(File, "scan")


async def scan_file(item_id: Any, session: AsyncSession) -> None:
    await scans.record(session, item_id)
    if os.environ.get("FAN_IN_SIBLING_BARRIER"):
        await _wait_for_siblings(session, item_id)


async def _wait_for_siblings(session: AsyncSession, item_id: Any) -> None:
    folder = select(File.folder_id).where(File.id == item_id).scalar_subquery()
    siblings = select(File.id).where(File.folder_id == folder)
    started = select(func.count(func.distinct(EXECUTIONS.c.item_id))).where(
        EXECUTIONS.c.item_id.in_(siblings)
    )
    everyone = select(func.count()).select_from(File).where(File.folder_id == folder)
    deadline = time.monotonic() + 30
    while await session.scalar(started) < await session.scalar(everyone):
        if time.monotonic() > deadline:
            raise TimeoutError(f"file {item_id}: its siblings did not start within 30 s")
        await asyncio.sleep(0.02)


async def gather_folder(item_id: Any, session: AsyncSession) -> None:
    """The folder's files are there already (the tests insert them)."""


async def finalise_folder(item_id: Any, session: AsyncSession) -> None:
    folder = await session.get(Folder, item_id)
    assert folder is not None
    done = select(func.count()).where(File.folder_id == item_id, File.scan_status == "Complete")
    folder.files_done = await session.scalar(done)
    folder.finalised_times += 1


gather = Workflow("gather", model=Folder, service=gather_folder, interval_seconds=0.2)
scan = Workflow("scan", model=File, service=scan_file, interval_seconds=0.2)
finalise = Workflow(
    "finalise",
    model=Folder,
    service=finalise_folder,
    interval_seconds=0.2,
    waits_for=Children(scan, parent_key="folder_id", after=gather),
)
WORKFLOWS = [gather, scan, finalise]


def create_the_fan_in() -> None:
    """The migration step: folders are queued for finalise when their files are scanned."""
    create_fan_in(
        "folders",
        "finalise",
        child_table="files",
        child_workflow="scan",
        parent_key="folder_id",
        after_workflow="gather",
    )
