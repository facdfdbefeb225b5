"""The demo's tables: domains → sitemap files → pages, one workflow on each.

Every table carries a *curation status* (what a person decided: New, Selected, Rejected)
next to its workflow's *processing status* (what the background job did). Selecting a row
queues it for its workflow, in the same transaction (`curate.DualStatus`; the demo's
are declared next to each workflow in ``services/<name>_scheduler.py``).
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text, func
from sqlalchemy import Enum as SAEnum
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from curate import workflow_mixin


class CurationStatus(enum.StrEnum):
    """What a person (or a rule standing in for one) decided about a row."""

    New = "New"
    Selected = "Selected"
    Rejected = "Rejected"


class Base(DeclarativeBase):
    """Columns every demo table has: a UUID key, a curation status and timestamps."""

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    curation_status: Mapped[CurationStatus] = mapped_column(
        SAEnum(CurationStatus, name="curation_status"),
        default=CurationStatus.New,
        server_default=CurationStatus.New.value,
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class Domain(workflow_mixin("sitemap_discovery"), Base):  # type: ignore[misc]
    """A web site to crawl; sitemap discovery reads the robots.txt under its URL."""

    __tablename__ = "domains"

    name: Mapped[str] = mapped_column(String(253), unique=True)
    url: Mapped[str] = mapped_column(Text)


class SitemapFile(
    workflow_mixin("sitemap_import"),  # type: ignore[misc]
    workflow_mixin("sitemap_finalise"),  # type: ignore[misc]
    Base,
):
    """A sitemap listed in a domain's robots.txt; sitemap import reads its URLs, sitemap
    finalise counts its pages' outcomes once they are all curated."""

    __tablename__ = "sitemap_files"

    domain_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("domains.id", ondelete="CASCADE"), index=True
    )
    url: Mapped[str] = mapped_column(Text, unique=True)
    url_count: Mapped[int | None] = mapped_column(Integer)
    pages_complete: Mapped[int | None] = mapped_column(Integer)
    pages_failed: Mapped[int | None] = mapped_column(Integer)


class Page(workflow_mixin("page_curation"), Base):  # type: ignore[misc]
    """A page listed in a sitemap; page curation records its title and length."""

    __tablename__ = "pages"

    domain_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("domains.id", ondelete="CASCADE"), index=True
    )
    sitemap_file_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sitemap_files.id", ondelete="CASCADE"), index=True
    )
    url: Mapped[str] = mapped_column(Text, unique=True)
    title: Mapped[str | None] = mapped_column(Text)
    word_count: Mapped[int | None] = mapped_column(Integer)
