"""The table and workflow the fault tests run in separate worker processes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, String, func, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from curate import Workflow, workflow_mixin


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


OUTCOME_LOG = [
    "CREATE TABLE fault_outcomes (item_id integer NOT NULL, status text NOT NULL)",
    """CREATE FUNCTION log_fault_outcome() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         INSERT INTO fault_outcomes VALUES (NEW.id, NEW.fault_status::text);
         RETURN NEW;
       END $$""",
    """CREATE TRIGGER fault_outcome AFTER UPDATE OF fault_status ON fault_items
       FOR EACH ROW WHEN (NEW.fault_status IN ('Complete', 'Error')
                          AND OLD.fault_status IS DISTINCT FROM NEW.fault_status)
       EXECUTE FUNCTION log_fault_outcome()""",
]
"""Every transition into a final status, logged by the database itself."""


def fault_workflow(worker: str, work_seconds: float, **options: float) -> Workflow:
    """A transactional service: its effect commits with Complete, or not at all."""

    async def process_single_fault(item_id: int, session: AsyncSession) -> None:
        session.add(FaultEffect(item_id=item_id, worker=worker))
        if work_seconds:
            await session.execute(text("SELECT pg_sleep(:s)"), {"s": work_seconds})

    return Workflow("fault", model=FaultItem, service=process_single_fault, **options)  # type: ignore[arg-type]
