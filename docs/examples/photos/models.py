"""The app's own table, `photos`, carrying the columns of the `thumbnail` workflow."""

import enum
from datetime import datetime

from curate import workflow_mixin
from sqlalchemy import DateTime, Enum, String, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class CurationStatus(enum.StrEnum):
    """Set by people in the app's UI; `Selected` queues the photo for a thumbnail."""

    New = "New"
    Selected = "Selected"
    Rejected = "Rejected"


class Photo(workflow_mixin("thumbnail"), Base):
    """Adds thumbnail_status, thumbnail_error, thumbnail_attempts, ... to the table, and
    the partial index over its queued rows that the claim reads."""

    __tablename__ = "photos"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(500))
    width: Mapped[int]
    height: Mapped[int]
    curation_status: Mapped[CurationStatus] = mapped_column(
        Enum(CurationStatus, name="curation_status"), default=CurationStatus.New
    )
    thumb_width: Mapped[int | None]
    thumb_height: Mapped[int | None]
    updated_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
