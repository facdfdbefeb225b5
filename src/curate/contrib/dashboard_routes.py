"""The dashboard's pages and the JSON endpoints behind its lists and charts, added to the
router `curate.contrib.fastapi.curate_router` builds (`add_dashboard_routes`).

Pages (HTML, not in the OpenAPI schema): ``GET /dashboard`` (every workflow, with charts),
``GET /dashboard/workflows/{name}`` (its items: ``?status=&id=&q=&group=&page=``) and
``GET /dashboard/workflows/{name}/items/{item_id}``. JSON: ``GET
/workflows/{name}/items`` (the same list) and ``GET /workflows/{name}/stats?hours=``. All
behind ``read_auth``; every error text through ``redact_error``.
"""

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from html import escape
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.params import Depends as DependsParam
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncEngine

from curate import browsing, operations
from curate.contrib.api_models import Problem
from curate.contrib.dashboard import CHART_HOURS, page, render_dashboard
from curate.contrib.dashboard_items import ListView, render_item, render_item_list
from curate.contrib.web_security import redact_attempts, redact_item, redact_report
from curate.errors import ConfigurationError
from curate.runtime import get_runtime
from curate.sql.items import ItemFilter, StatusName, group_key
from curate.workflow import Workflow

DASHBOARD_HEADERS = {
    "Cache-Control": "no-store",
    # Only the app's own pages may frame it: no other site overlays its buttons.
    "Content-Security-Policy": "frame-ancestors 'self'",
    "X-Frame-Options": "SAMEORIGIN",
}
MAX_STATS_HOURS = 168


class ItemSummary(BaseModel):
    """One row of a workflow's item list; null where the table lacks the column."""

    model_config = ConfigDict(from_attributes=True)

    id: int | UUID | str
    status: str | None
    error: str | None = Field(description="The error's first line, through redact_error.")
    attempts: int | None
    updated_at: datetime | None


class ItemList(BaseModel):
    """One page of a workflow's rows, newest first (by updated_at, else by primary key)."""

    model_config = ConfigDict(from_attributes=True)

    items: list[ItemSummary]
    page: int = Field(description="From 1.")
    per_page: int
    has_next: bool = Field(description="Another page follows.")


class StatsBucket(BaseModel):
    """One bucket of a workflow's outcomes, summed over every worker."""

    model_config = ConfigDict(from_attributes=True)

    start: datetime
    completed: int
    failed: int = Field(description="Items that ended in Error.")
    retried: int = Field(description="Failed attempts queued again.")
    queued: int | None = Field(
        description="The deepest queue a worker sampled in the bucket; null: none sampled."
    )


class StatsSeries(BaseModel):
    """A workflow's outcomes and queue depth over the last hours, oldest bucket first; the
    last bucket is the current one, still filling."""

    model_config = ConfigDict(from_attributes=True)

    workflow: str
    hours: int
    bucket_seconds: int
    buckets: list[StatsBucket]


Ids = Annotated[str, Query(max_length=200, description="A primary key, exactly.")]
ErrorText = Annotated[
    str,
    Query(
        max_length=1_000,
        pattern="^[^\x00]*$",
        description="Rows whose stored error contains this text (any case); empty: any.",
    ),
]
Group = Annotated[
    str | None,
    Query(pattern="^[0-9a-f]{16}$", description="An error group's key (the dashboard's links)."),
]
PageNumber = Annotated[int, Query(ge=1, le=10_000, description="From 1.")]


def add_dashboard_routes(
    router: APIRouter,
    workflows: Sequence[Workflow],
    *,
    workflow_named: Callable[..., Workflow],
    reads: list[DependsParam],
    requeue: bool,
    redact_error: Callable[[str], str],
    refresh_seconds: float,
) -> None:
    """Add the dashboard's pages and its JSON reads to ``router``. ``workflow_named``: the
    router's dependency that finds a workflow by its path's name (404 otherwise);
    ``requeue``: whether the requeue endpoint is mounted (buttons shown)."""
    named = Annotated[Workflow, Depends(workflow_named)]

    def base_path(request: Request) -> str:
        return request.url_for("curate_dashboard").path.removesuffix("/dashboard")

    @router.get(
        "/dashboard",
        response_class=HTMLResponse,
        include_in_schema=False,
        name="curate_dashboard",
        dependencies=reads,
    )
    async def dashboard(request: Request) -> HTMLResponse:
        """Every workflow's figures, charts and error groups, refreshing itself."""
        engine = await get_runtime().database.engine()
        report = await operations.read_status(engine, workflows)
        keys = {w.name: [group_key(group.message) for group in w.errors] for w in report.workflows}
        stats = {w.name: await _stats_or_why(engine, w, CHART_HOURS) for w in workflows}
        html = render_dashboard(
            redact_report(report, redact_error),
            base_path=base_path(request),
            requeue=requeue,
            refresh_seconds=refresh_seconds,
            group_keys=keys,
            stats=stats,
        )
        return HTMLResponse(html, headers=DASHBOARD_HEADERS)

    @router.get(
        "/dashboard/workflows/{name}",
        response_class=HTMLResponse,
        include_in_schema=False,
        dependencies=reads,
    )
    async def items_page(
        request: Request,
        workflow: named,
        status: StatusName | Literal[""] = "",
        id: Ids = "",
        q: ErrorText = "",
        group: Group = None,
        page: PageNumber = 1,
    ) -> HTMLResponse:
        """The workflow's rows, filtered, searched and paged, newest first."""
        chosen, problem = _filter(workflow, status or None, id, q, group)
        listing = browsing.ItemList([], page, browsing.ITEMS_PER_PAGE, has_next=False)
        if problem is None:
            listing = await _read_items(workflow, chosen, page, redact_error)
        view = ListView(
            workflow.name, workflow.binding.table.name, _key_type(workflow), chosen, id, problem
        )
        html = render_item_list(
            view, listing, base_path=base_path(request), refresh_seconds=refresh_seconds
        )
        code = 200 if problem is None else 422
        return HTMLResponse(html, status_code=code, headers=DASHBOARD_HEADERS)

    @router.get(
        "/dashboard/workflows/{name}/items/{item_id}",
        response_class=HTMLResponse,
        include_in_schema=False,
        dependencies=reads,
    )
    async def item_page(
        request: Request, workflow: named, item_id: Annotated[str, Path(max_length=200)]
    ) -> HTMLResponse:
        """One item's status columns and attempts, with requeue and cancel buttons when the
        write endpoints are mounted."""
        try:
            [typed_id] = operations.item_ids(workflow, [item_id])
        except operations.InvalidItemId as error:
            return _problem_page(str(error), 422, refresh_seconds)
        engine = await get_runtime().database.engine()
        item = await operations.read_item(engine, workflow, typed_id)
        if item is None:
            missing = f"no item {item_id} in {workflow.binding.table.name}"
            return _problem_page(missing, 404, refresh_seconds)
        attempts = await operations.read_attempts(engine, workflow, typed_id)
        html = render_item(
            workflow.name,
            redact_item(item, redact_error),
            None if attempts is None else redact_attempts(attempts, redact_error),
            base_path=base_path(request),
            requeue=requeue,
            refresh_seconds=refresh_seconds,
        )
        return HTMLResponse(html, headers=DASHBOARD_HEADERS)

    @router.get(
        "/workflows/{name}/items",
        response_model=ItemList,
        dependencies=reads,
        responses={404: {"model": Problem}},
    )
    async def list_items(
        workflow: named,
        status: StatusName | None = None,
        id: Ids = "",
        q: ErrorText = "",
        group: Group = None,
        page: PageNumber = 1,
    ) -> Any:
        """The workflow's rows (those with a status in it), filtered, searched and paged,
        newest first: the dashboard's item list."""
        chosen, problem = _filter(workflow, status, id, q, group)
        if problem is not None:
            detail = [{"loc": ["query", "id"], "msg": problem, "type": "value_error"}]
            raise HTTPException(status_code=422, detail=detail)
        return await _read_items(workflow, chosen, page, redact_error)

    @router.get(
        "/workflows/{name}/stats",
        response_model=StatsSeries,
        dependencies=reads,
        responses={
            404: {"model": Problem},
            503: {"model": Problem, "description": "curate's stats table does not exist."},
        },
    )
    async def read_stats(
        workflow: named,
        hours: Annotated[int, Query(ge=1, le=MAX_STATS_HOURS)] = CHART_HOURS,
    ) -> Any:
        """The workflow's completions, failures, retries and queue depth over the last
        ``hours``, in buckets of whole minutes (5 over 6 hours), from every worker."""
        engine = await get_runtime().database.engine()
        try:
            return await browsing.read_stats(engine, workflow, hours)
        except ConfigurationError as error:
            raise HTTPException(status_code=503, detail=str(error)) from None


def _filter(
    workflow: Workflow, status: str | None, id_text: str, q: str, group: str | None
) -> tuple[ItemFilter, str | None]:
    """The list's filter from the query, and why the id was refused (the filter then
    leaves the id out)."""
    ids: tuple[Any, ...] = ()
    problem = None
    if id_text:
        try:
            ids = operations.item_ids(workflow, [id_text])
        except operations.InvalidItemId as error:
            problem = str(error)
    return ItemFilter(status, ids, q or None, group), problem


async def _read_items(
    workflow: Workflow, chosen: ItemFilter, page: int, redact: Callable[[str], str]
) -> browsing.ItemList:
    engine = await get_runtime().database.engine()
    listing = await browsing.read_items(engine, workflow, chosen, page)
    items = [
        item if item.error is None else replace(item, error=redact(item.error))
        for item in listing.items
    ]
    return replace(listing, items=items)


async def _stats_or_why(engine: AsyncEngine, workflow: Workflow, hours: int) -> Any:
    """The workflow's series for its charts, or why there is none."""
    try:
        return await browsing.read_stats(engine, workflow, hours)
    except ConfigurationError as error:
        return str(error)


def _key_type(workflow: Workflow) -> str:
    """The primary key's Python type, named for the id field's hint."""
    try:
        return workflow.binding.pk.type.python_type.__name__
    except NotImplementedError:
        return "id"


def _problem_page(problem: str, status_code: int, refresh_seconds: float) -> HTMLResponse:
    """An item page's refusal (a bad id, no such row), as a page."""
    body = f'<main><p class="problem" role="alert">{escape(problem)}</p></main>'
    html = page(f"curate — {status_code}", body, refresh_seconds=refresh_seconds)
    return HTMLResponse(html, status_code=status_code, headers=DASHBOARD_HEADERS)
