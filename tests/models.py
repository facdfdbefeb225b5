"""Tables the tests run workflows over."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text, func, text
from sqlalchemy import Enum as SAEnum
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from curate import workflow_mixin


class Base(DeclarativeBase):
    pass


class Item(workflow_mixin("work"), Base):
    """A table with every curate column for the workflow ``work``, and ``updated_at``."""

    __tablename__ = "items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    payload: Mapped[str] = mapped_column(String(100), default="")
    updated_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class Effect(Base):
    """One row per side effect a service performed: counts prove exactly-once."""

    __tablename__ = "effects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(Integer, index=True)
    note: Mapped[str] = mapped_column(String(100), default="")


class SeedStatus(enum.Enum):
    """A seed-style status enum with the seed's own member names."""

    queued = "Queued"
    processing = "Processing"
    complete = "Complete"
    error = "Error"


class SeedItem(Base):
    """The minimal seed table: a UUID id, the status column, the error column, and the
    partial index on queued rows that the docs ask of such a table."""

    __tablename__ = "seed_items"
    __table_args__ = (
        Index("ix_seed_items_queued", "id", postgresql_where=text("status = 'queued'")),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    status: Mapped[SeedStatus | None] = mapped_column(SAEnum(SeedStatus, name="seed_status"))
    error: Mapped[str | None] = mapped_column(Text)


class SeedChild(Base):
    """Rows a seed-style service writes, to check its transaction handling."""

    __tablename__ = "seed_children"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    parent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("seed_items.id"))
