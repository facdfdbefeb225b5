"""The table and workflow the fault tests run in separate worker processes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Integer, String, func, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from curate import Workflow, workflow_mixin
from tests.executions import ExecutionLog, ExecutionTable


class Base(DeclarativeBase):
    pass


class FaultItem(workflow_mixin("fault"), Base):
    __tablename__ = "fault_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    updated_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class FaultEffect(Base):
    """One row per side effect the service committed: more than one per item is a double."""

    __tablename__ = "fault_effects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(Integer, index=True)
    worker: Mapped[str] = mapped_column(String(200))


TRANSITION_LOG = [
    """CREATE TABLE fault_transitions (
         item_id integer NOT NULL, old_status text, new_status text NOT NULL)""",
    """CREATE FUNCTION log_fault_transition() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         INSERT INTO fault_transitions
           VALUES (NEW.id, OLD.fault_status::text, NEW.fault_status::text);
         RETURN NEW;
       END $$""",
    """CREATE TRIGGER fault_transition AFTER UPDATE OF fault_status ON fault_items
       FOR EACH ROW WHEN (NEW.fault_status <> 'Processing'
                          AND OLD.fault_status IS DISTINCT FROM NEW.fault_status)
       EXECUTE FUNCTION log_fault_transition()""",
]
"""Every change of status but a claim, logged by the database itself: the outcomes
(into Complete or Error) and the hand-backs (Processing to Queued: a rescue, a retry, a
release), after which a row may run again."""

OUTCOMES = """SELECT item_id, count(*) FROM fault_transitions
              WHERE new_status IN ('Complete', 'Error') GROUP BY 1"""
HANDBACKS = """SELECT item_id, count(*) FROM fault_transitions
               WHERE old_status = 'Processing' AND new_status = 'Queued' GROUP BY 1"""


def fault_executions(engine: AsyncEngine | None = None) -> ExecutionTable:
    """The services' executions, kept in the table ``executions`` (worker processes write
    it; the test reads it through ``engine``)."""
    return ExecutionTable(FaultItem, "fault", engine)


def fault_workflow(
    worker: str, work_seconds: float, executions: ExecutionLog | None = None, **options: Any
) -> Workflow:
    """A transactional service: its effect commits with Complete, or not at all. Each
    start of it is recorded in ``executions``, whatever becomes of its transaction."""

    async def process_single_fault(item_id: int, session: AsyncSession) -> None:
        if executions is not None:
            await executions.record(session, item_id)
        session.add(FaultEffect(item_id=item_id, worker=worker))
        if work_seconds:
            await session.execute(text("SELECT pg_sleep(:s)"), {"s": work_seconds})

    return Workflow("fault", model=FaultItem, service=process_single_fault, **options)
