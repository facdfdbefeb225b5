"""curate inside a FastAPI app: a lifespan that runs the workflows, and a router (JSON
endpoints and an HTML dashboard).

    app = FastAPI(lifespan=curate_lifespan(WORKFLOWS))
    app.include_router(
        curate_router(WORKFLOWS, read_auth=require_staff, requeue_auth=require_admin),
        prefix="/curate",
    )

Needs the ``fastapi`` extra: ``pip install 'curate-workflows[fastapi]'``.
"""

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from typing import Annotated, Any, Self
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from curate import operations, scheduling
from curate.contrib.dashboard import render_dashboard
from curate.contrib.web_security import cross_site_guard as cross_site_guard  # public here
from curate.contrib.web_security import redact_item, redact_report
from curate.contrib.web_security import redact_secrets as redact_secrets  # public here
from curate.preflight import check_at_start
from curate.runtime import configure, get_runtime
from curate.settings import CurateSettings
from curate.sql import RequeueSelection
from curate.workflow import Workflow

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[Any]]


def curate_lifespan(
    workflows: Sequence[Workflow],
    *,
    settings: CurateSettings | None = None,
    grace_seconds: float | None = None,
    lifespan: Lifespan | None = None,
    require_database: bool = False,
) -> Lifespan:
    """A FastAPI lifespan that runs ``workflows`` on the shared scheduler.

    At start-up: configures curate (``settings``, default `CurateSettings()` from the
    environment; bad settings stop the start here), opens the database (starting the
    embedded server when no URL is set) and checks it (`curate.preflight`), registers one
    job per workflow and starts the scheduler. A database that cannot be used or a table
    not migrated is logged, one line each, and the app starts: the workflows retry at
    their interval, so the app's other endpoints serve meanwhile and a migration run
    later needs no restart. With ``require_database`` it stops the start instead. Then it
    enters the app's own ``lifespan``, if given, with curate running. At shutdown it
    leaves that first, then stops claiming, waits up to ``grace_seconds`` (default
    ``CURATE_SHUTDOWN_GRACE_SECONDS``) for running items and closes the database.
    """

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[Any]:
        runtime = configure(settings if settings is not None else CurateSettings())
        try:
            for workflow in workflows:
                runtime.workflow_settings(workflow)  # bad settings stop us before the database
            await check_at_start(runtime.database, workflows, require=require_database)
            for workflow in workflows:
                scheduling.add_workflow_job(
                    workflow, scheduling.job_for(workflow, runtime), runtime
                )
            scheduling.start_scheduler(runtime)
            try:
                if lifespan is None:
                    yield None
                else:
                    async with lifespan(app) as state:
                        yield state
            finally:
                await scheduling.shutdown_scheduler(grace_seconds, runtime)
        finally:
            await runtime.close()

    return run


# --- the router's models ---------------------------------------------------------------------


class StatusCounts(BaseModel):
    """Rows per processing status; ``other``: a status outside the workflow's four;
    ``unset``: rows whose status is NULL (never queued for this workflow)."""

    queued: int
    processing: int
    complete: int
    error: int
    other: int
    unset: int


class ErrorGroup(BaseModel):
    """Failed rows whose errors' first lines differ only in ids and numbers."""

    model_config = ConfigDict(from_attributes=True)

    message: str = Field(description="The first line, with UUIDs as <uuid> and numbers as N.")
    rows: int
    last_seen: datetime | None = Field(description="Null without an updated_at column.")
    example: str = Field(description="One of the real first lines.")


class WorkflowStatus(BaseModel):
    """One workflow's queue; null where the table lacks the column the figure needs."""

    model_config = ConfigDict(from_attributes=True)

    name: str
    table: str
    counts: StatusCounts
    oldest_queued_seconds: float | None = Field(
        description="Age of the oldest queued row, from updated_at."
    )
    expired_leases: int | None = Field(description="Rows Processing past their lease.")
    throughput_per_minute: float | None = Field(
        description=(
            f"Rows completed per minute over the last "
            f"{int(operations.THROUGHPUT_WINDOW.total_seconds())} s, from updated_at."
        )
    )
    errors: list[ErrorGroup] = Field(
        description=f"The {operations.ERROR_GROUPS} largest groups of rows in Error."
    )
    failures_found: bool = Field(description="Rows in Error or past their lease.")
    paused: bool = Field(description="No worker claims its rows until it is resumed.")
    paused_at: datetime | None = Field(description="When it was paused; null: not paused.")
    paused_reason: str | None = Field(description="Why, as given to the pause.")
    rate_limit: float | None = Field(
        description="Items per second it may start across all workers; null: unlimited."
    )


class StatusReport(BaseModel):
    """Every workflow, read in one snapshot at the database's time."""

    model_config = ConfigDict(from_attributes=True)

    at: datetime
    failures_found: bool
    workflows: list[WorkflowStatus]


class ItemState(BaseModel):
    """One row's processing state; null where the table lacks the column."""

    model_config = ConfigDict(from_attributes=True)

    id: int | UUID | str
    status: str | None
    error: str | None
    attempts: int | None
    run_after: datetime | None = Field(description="Not before this time; null: now.")
    claimed_by: str | None = Field(
        description="The token of the last claim: the worker id, `#`, 16 hex digits."
    )
    lease_until: datetime | None
    updated_at: datetime | None


class RequeueRequest(BaseModel):
    """Which rows to put back to Queued: ``errors`` and ``stuck`` choose by status (either
    matches); ``ids`` and ``where_error`` narrow the choice, or choose on their own from
    every status but a running row."""

    model_config = ConfigDict(extra="forbid")

    ids: list[int | str] = Field(default=[], max_length=10_000, description="Primary keys.")
    errors: bool = Field(default=False, description="Rows in the failed status.")
    stuck: bool = Field(default=False, description="Rows Processing past their lease.")
    where_error: str | None = Field(
        default=None,
        min_length=1,
        max_length=1_000,
        pattern="^[^\x00]*$",
        description="Rows whose error contains this text (any case).",
    )

    @model_validator(mode="after")
    def _says_which(self) -> Self:
        if not (self.errors or self.stuck or self.ids or self.where_error is not None):
            raise ValueError("say which rows to re-queue: errors, stuck, ids or where_error")
        return self


class Problem(BaseModel):
    """An error: FastAPI's ``{"detail": ...}``."""

    detail: str


class RequeueResult(BaseModel):
    workflow: str
    requeued: int = Field(description="How many rows were put back to Queued.")


class PauseRequest(BaseModel):
    """Why the workflow is paused (shown by the status until it is resumed)."""

    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=1_000, pattern="^[^\x00]*$")


class PauseResult(BaseModel):
    workflow: str
    paused: bool = Field(description="Whether the workflow is paused now.")
    changed: bool = Field(description="False when it already was in that state.")


# --- the router ------------------------------------------------------------------------------

_DASHBOARD_HEADERS = {
    "Cache-Control": "no-store",
    # Only the app's own pages may frame it: no other site overlays its buttons.
    "Content-Security-Policy": "frame-ancestors 'self'",
    "X-Frame-Options": "SAMEORIGIN",
}
_NOT_JSON: dict[str, Any] = {"model": Problem, "description": "The body is not JSON."}
_WRITE_REFUSALS: dict[int | str, dict[str, Any]] = {
    403: {
        "model": Problem,
        "description": "Sent from another site's page (Origin, Sec-Fetch-Site).",
    },
    404: {"model": Problem},
    415: {"model": Problem, "description": "Content-Type is not application/json."},
}


def curate_router(
    workflows: Sequence[Workflow],
    *,
    read_auth: Callable[..., Any] | None = None,
    requeue_auth: Callable[..., Any] | None = None,
    redact_error: Callable[[str], str] = redact_secrets,
    allowed_origins: Sequence[str] = (),
    dashboard_refresh_seconds: float = 5.0,
) -> APIRouter:
    """JSON endpoints and an HTML dashboard over ``workflows``, for the app to mount
    (``include_router``).

    ``GET /workflows``, ``GET /workflows/{name}``, ``GET /workflows/{name}/items/{item_id}``
    and ``GET /dashboard`` (an HTML page refreshing itself every
    ``dashboard_refresh_seconds``), behind ``read_auth`` when given (a FastAPI dependency
    that raises to refuse); every error text they show passes through ``redact_error``.
    Only when ``requeue_auth`` is given: ``POST /workflows/{name}/requeue``, ``/pause`` and
    ``/resume`` behind it, and the dashboard's requeue buttons. Before that auth runs,
    those refuse what another site's page may send (`cross_site_guard`; pages of
    ``allowed_origins`` may post too). Reads use the configured runtime's database, so the
    app runs `curate_lifespan` (or configures curate itself).
    """
    if not dashboard_refresh_seconds > 0:
        raise ValueError(
            f"dashboard_refresh_seconds must be > 0, not {dashboard_refresh_seconds!r}"
        )
    known: Mapping[str, Workflow] = {w.name: w for w in workflows}
    router = APIRouter(tags=["curate"])
    reads = [Depends(read_auth)] if read_auth is not None else []
    guard = Depends(cross_site_guard(allowed_origins))  # also checks allowed_origins now

    def workflow_named(
        name: Annotated[
            str, Path(description="The workflow's name.", json_schema_extra={"enum": list(known)})
        ],
    ) -> Workflow:
        if name not in known:
            raise HTTPException(
                status_code=404, detail=f"no workflow named {name!r}; known: {', '.join(known)}"
            )
        return known[name]

    async def status_of(selected: Sequence[Workflow]) -> operations.StatusReport:
        """The workflows' figures as the router shows them: errors redacted."""
        engine = await get_runtime().database.engine()
        return redact_report(await operations.read_status(engine, selected), redact_error)

    @router.get("/workflows", response_model=StatusReport, dependencies=reads)
    async def list_workflows() -> Any:
        """Every workflow's counts by status, oldest queued age, expired leases, errors."""
        return await status_of(list(known.values()))

    @router.get(
        "/workflows/{name}",
        response_model=WorkflowStatus,
        dependencies=reads,
        responses={404: {"model": Problem}},
    )
    async def read_workflow(workflow: Annotated[Workflow, Depends(workflow_named)]) -> Any:
        """One workflow's counts by status, oldest queued age, expired leases, errors."""
        [found] = (await status_of([workflow])).workflows
        return found

    @router.get(
        "/workflows/{name}/items/{item_id}",
        response_model=ItemState,
        dependencies=reads,
        responses={404: {"model": Problem}},
    )
    async def read_item(
        workflow: Annotated[Workflow, Depends(workflow_named)],
        item_id: Annotated[str, Path(max_length=200)],
    ) -> Any:
        """One item's processing state in the workflow."""
        [typed_id] = _typed_ids(workflow, [item_id], field=("path", "item_id"))
        engine = await get_runtime().database.engine()
        item = await operations.read_item(engine, workflow, typed_id)
        if item is None:
            raise HTTPException(
                status_code=404, detail=f"no item {item_id} in {workflow.binding.table.name}"
            )
        return redact_item(item, redact_error)

    @router.get(
        "/dashboard",
        response_class=HTMLResponse,
        include_in_schema=False,
        name="curate_dashboard",
        dependencies=reads,
    )
    async def dashboard(request: Request) -> HTMLResponse:
        """The workflows' figures as an HTML page that refreshes itself."""
        page = render_dashboard(
            await status_of(list(known.values())),
            base_path=request.url_for("curate_dashboard").path.removesuffix("/dashboard"),
            requeue=requeue_auth is not None,
            refresh_seconds=dashboard_refresh_seconds,
        )
        return HTMLResponse(page, headers=_DASHBOARD_HEADERS)

    if requeue_auth is not None:
        writes = [guard, Depends(requeue_auth)]  # the guard first: before the auth runs

        @router.post(
            "/workflows/{name}/requeue",
            response_model=RequeueResult,
            dependencies=writes,
            responses={400: _NOT_JSON, **_WRITE_REFUSALS},
        )
        async def requeue(
            workflow: Annotated[Workflow, Depends(workflow_named)], request: RequeueRequest
        ) -> RequeueResult:
            """Put the chosen rows back to Queued: attempts 0, error and claim cleared, due
            now. A row a worker claimed meanwhile is left alone."""
            selection = RequeueSelection(
                request.errors,
                request.stuck,
                _typed_ids(workflow, request.ids, field=("body", "ids")),
                request.where_error,
            )
            engine = await get_runtime().database.engine()
            moved = await operations.requeue(engine, workflow, selection)
            return RequeueResult(workflow=workflow.name, requeued=moved)

        @router.post(
            "/workflows/{name}/pause",
            response_model=PauseResult,
            dependencies=writes,
            responses={400: _NOT_JSON, **_WRITE_REFUSALS},
        )
        async def pause(
            workflow: Annotated[Workflow, Depends(workflow_named)],
            request: PauseRequest | None = None,
        ) -> PauseResult:
            """Stop every worker from claiming the workflow's rows; running items finish.
            A paused workflow keeps its first reason."""
            engine = await get_runtime().database.engine()
            reason = request.reason if request is not None else None
            changed = await operations.pause_workflow(engine, workflow, reason)
            return PauseResult(workflow=workflow.name, paused=True, changed=changed)

        @router.post(
            "/workflows/{name}/resume",
            response_model=PauseResult,
            dependencies=writes,
            responses=_WRITE_REFUSALS,
        )
        async def resume(workflow: Annotated[Workflow, Depends(workflow_named)]) -> PauseResult:
            """Let workers claim the workflow's rows again; listening ones start at once."""
            engine = await get_runtime().database.engine()
            changed = await operations.resume_workflow(engine, workflow)
            return PauseResult(workflow=workflow.name, paused=False, changed=changed)

    return router


def _typed_ids(
    workflow: Workflow, raw: Sequence[Any], *, field: tuple[str, str]
) -> tuple[Any, ...]:
    """The ids as the primary key's type; a 422 in FastAPI's format when one cannot be."""
    try:
        return operations.item_ids(workflow, raw)
    except operations.InvalidItemId as error:
        raise HTTPException(
            status_code=422,
            detail=[{"loc": list(field), "msg": str(error), "type": "value_error"}],
        ) from None
