"""Report exports, whose status enum has a Cancelled member: a cancelled export ends
there, not in Error."""

import enum

from curate import Workflow, workflow_mixin
from sqlalchemy import String
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


# docs: start statuses
class ExportStatus(enum.StrEnum):
    Queued = "Queued"
    Processing = "Processing"
    Complete = "Complete"
    Error = "Error"
    Cancelled = "Cancelled"  # found by name: cancelled rows end here


class Export(workflow_mixin("export", ExportStatus), Base):
    __tablename__ = "exports"

    id: Mapped[int] = mapped_column(primary_key=True)
    report: Mapped[str] = mapped_column(String(200))
    file: Mapped[str | None] = mapped_column(String(500))


# docs: end statuses


async def process_single_export(export_id: int, session: AsyncSession) -> None:
    row = await session.get(Export, export_id)
    assert row is not None
    row.file = f"/exports/{row.report}-{export_id}.csv"


# docs: start workflow
export = Workflow("export", model=Export, service=process_single_export, status_enum=ExportStatus)
assert export.statuses.cancelled is ExportStatus.Cancelled
# docs: end workflow
