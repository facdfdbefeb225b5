"""The queue order as the seed's schedulers give it: ``order_by_column=asc(Model.updated_at)``.

Every scheduler module of the seed codebase passes ``asc(<Model>.updated_at)``; its SDK
typed the argument as a SQLAlchemy column expression and, given none, ordered by
``updated_at`` ascending. Items must run in the order asked for, in either direction.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import DateTime, Integer, Text, asc, desc, func, insert, nulls_last
from sqlalchemy import Enum as SAEnum
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import curate
from curate import ConfigurationError, Workflow, run_job_loop
from curate.engine.claim import claim_batch
from tests.helpers import noop


class PageStatus(enum.Enum):
    """The seed codebase's own member names."""

    Queued = "Queued"
    Processing = "Processing"
    Completed = "Completed"
    Error = "Error"


class Base(DeclarativeBase):
    pass


class Page(Base):
    __tablename__ = "ordered_pages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    site: Mapped[str] = mapped_column(Text, default="a")
    page_curation_status: Mapped[PageStatus | None] = mapped_column(
        SAEnum(PageStatus, name="ordered_page_status")
    )
    page_curation_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


BASE = datetime(2026, 1, 1, tzinfo=UTC)
UPDATED_AT = {1: BASE + timedelta(hours=3), 2: BASE + timedelta(hours=1), 3: None, 4: BASE}
"""Id → updated_at: ascending is 4, 2, 1 then the NULL (3); descending 3, 1, 2, 4."""


@pytest.fixture
async def pages(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
        await conn.execute(
            insert(Page),
            [
                {"id": i, "page_curation_status": PageStatus.Queued, "updated_at": at}
                for i, at in UPDATED_AT.items()
            ],
        )


async def run_in_seed_shape(order_by_column: Any) -> list[int]:
    """The seed's call, exactly; the ids in the order their service started."""
    started: list[int] = []

    async def process_single_page(item_id: int, session: AsyncSession) -> None:
        started.append(item_id)

    await run_job_loop(
        model=Page,
        status_enum=PageStatus,
        queued_status=PageStatus.Queued,
        processing_status=PageStatus.Processing,
        completed_status=PageStatus.Completed,
        failed_status=PageStatus.Error,
        processing_function=process_single_page,
        batch_size=10,
        order_by_column=order_by_column,
        status_field_name="page_curation_status",
        error_field_name="page_curation_error",
    )
    return started


@pytest.mark.parametrize(
    ("order_by_column", "expected"),
    [
        pytest.param(asc(Page.updated_at), [4, 2, 1, 3], id="asc(Model.updated_at)"),
        pytest.param(None, [4, 2, 1, 3], id="none: updated_at ascending, as the SDK"),
        pytest.param(Page.updated_at, [4, 2, 1, 3], id="Model.updated_at"),
        pytest.param("updated_at", [4, 2, 1, 3], id="a name"),
        pytest.param(Page.__table__.c.updated_at, [4, 2, 1, 3], id="a Column"),
        pytest.param(desc(Page.updated_at), [3, 1, 2, 4], id="desc(Model.updated_at)"),
        pytest.param(nulls_last(desc(Page.updated_at)), [1, 2, 4, 3], id="nulls_last(desc())"),
        pytest.param(asc(Page.id), [1, 2, 3, 4], id="asc(Model.id)"),
    ],
)
async def test_order_by_column_takes_what_the_seed_passes_and_runs_items_in_that_order(
    runtime: curate.Runtime, pages: None, order_by_column: Any, expected: list[int]
) -> None:
    assert await run_in_seed_shape(order_by_column) == expected


@pytest.mark.parametrize(
    "order_by_column",
    [func.lower(Page.site), asc(func.lower(Page.site)), 42, "no_such_column"],
    ids=["an expression", "asc of an expression", "a number", "an unknown name"],
)
async def test_anything_else_is_refused_naming_what_order_by_takes(
    runtime: curate.Runtime, pages: None, order_by_column: Any
) -> None:
    with pytest.raises(ConfigurationError, match=r"order_by=.* give a column name"):
        await run_in_seed_shape(order_by_column)
    assert await run_in_seed_shape(asc(Page.updated_at)) == [4, 2, 1, 3]  # the real thing


async def test_a_descending_order_holds_rows_of_a_key_in_that_order(
    runtime: curate.Runtime, pages: None
) -> None:
    """The per-key lock's "ahead of it" follows the direction too: under
    ``desc(updated_at)`` (NULLs first) the NULL row leads key a, and only it is claimed."""
    flow = Workflow(
        "page_curation",
        model=Page,
        service=noop,
        statuses=curate.Statuses(
            queued=PageStatus.Queued,
            processing=PageStatus.Processing,
            complete=PageStatus.Completed,
            failed=PageStatus.Error,
        ),
        order_by=desc(Page.updated_at),
        lock_key="site",
    )
    ctx = await runtime.context(flow)
    assert [item.id for item in await claim_batch(ctx, 10)] == [3]
