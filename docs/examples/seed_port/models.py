"""The app's models, as the seed codebase has them: statuses per workflow, its own enums."""

import enum
import uuid
from datetime import datetime

from sqlalchemy import DateTime, Enum, ForeignKey, Text, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class SitemapImportProcessStatus(enum.Enum):
    Queued = "Queued"
    Processing = "Processing"
    Complete = "Complete"
    Error = "Error"


class PageCurationStatus(enum.Enum):
    """This workflow spells its final status ``Completed``, as several of the seed's do."""

    Queued = "Queued"
    Processing = "Processing"
    Completed = "Completed"
    Error = "Error"


class SitemapFile(Base):
    __tablename__ = "sitemap_files"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    content: Mapped[str] = mapped_column(Text)
    sitemap_import_status: Mapped[SitemapImportProcessStatus | None] = mapped_column(
        Enum(SitemapImportProcessStatus, name="sitemap_import_process_status")
    )
    sitemap_import_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class Page(Base):
    __tablename__ = "pages"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    sitemap_file_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sitemap_files.id"))
    url: Mapped[str] = mapped_column(Text)
    contact_email: Mapped[str | None] = mapped_column(Text)
    page_curation_status: Mapped[PageCurationStatus | None] = mapped_column(
        Enum(PageCurationStatus, name="page_curation_status")
    )
    page_curation_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
