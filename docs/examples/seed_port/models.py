"""A seed-style table: an id, a status column and an error column, nothing of curate's."""

import enum
import uuid

from sqlalchemy import Enum, ForeignKey, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class SitemapImportProcessStatus(enum.Enum):
    Queued = "Queued"
    Processing = "Processing"
    Complete = "Complete"
    Error = "Error"


class SitemapFile(Base):
    __tablename__ = "sitemap_files"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    content: Mapped[str] = mapped_column(Text)
    sitemap_import_status: Mapped[SitemapImportProcessStatus | None] = mapped_column(
        Enum(SitemapImportProcessStatus, name="sitemap_import_process_status")
    )
    sitemap_import_error: Mapped[str | None] = mapped_column(Text)


class Page(Base):
    __tablename__ = "pages"

    id: Mapped[int] = mapped_column(primary_key=True)
    sitemap_file_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sitemap_files.id"))
    url: Mapped[str] = mapped_column(Text)
