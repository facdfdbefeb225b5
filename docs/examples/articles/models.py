"""Articles (fetched, then summarised) and the links found in them (checked)."""

import enum

from curate import workflow_mixin
from sqlalchemy import Enum, ForeignKey, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class CurationStatus(enum.StrEnum):
    New = "New"
    Selected = "Selected"
    Rejected = "Rejected"


class Article(workflow_mixin("fetch"), workflow_mixin("summarise"), Base):
    """Two workflows on one table: fetch_status, fetch_error, ..., summarise_status, ..."""

    __tablename__ = "articles"

    id: Mapped[int] = mapped_column(primary_key=True)
    site: Mapped[str] = mapped_column(String(200))
    url: Mapped[str] = mapped_column(String(500))
    curation_status: Mapped[CurationStatus] = mapped_column(
        Enum(CurationStatus, name="article_curation"), default=CurationStatus.New
    )
    body: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[str | None] = mapped_column(Text)


class Link(workflow_mixin("check_link"), Base):
    __tablename__ = "links"

    id: Mapped[int] = mapped_column(primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id"))
    url: Mapped[str] = mapped_column(String(500))
