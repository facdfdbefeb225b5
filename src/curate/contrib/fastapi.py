"""curate inside a FastAPI app: a lifespan that runs the workflows, and a router (JSON
endpoints and an HTML dashboard).

    app = FastAPI(lifespan=curate_lifespan(WORKFLOWS))
    app.include_router(curate_router(WORKFLOWS, requeue_auth=require_admin), prefix="/curate")

Needs the ``fastapi`` extra: ``pip install 'curate[fastapi]'``.
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
) -> Lifespan:
    """A FastAPI lifespan that runs ``workflows`` on the shared scheduler.

    At start-up: configures curate (``settings``, default `CurateSettings()` from the
    environment), opens the database (starting the embedded server when no URL is set),
    registers one job per workflow and starts the scheduler; bad settings or a table
    missing a column stop the start here. Then it enters the app's own ``lifespan``, if
    given, with curate running. At shutdown it leaves that first, then stops claiming,
    waits up to ``grace_seconds`` (default ``CURATE_SHUTDOWN_GRACE_SECONDS``) for running
    items and closes the database.
    """

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[Any]:
        runtime = configure(settings if settings is not None else CurateSettings())
        try:
            await runtime.database.engine()
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
    """Rows per processing status; ``other``: a status outside the workflow's four."""

    queued: int
    processing: int
    complete: int
    error: int
    other: int


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
    claimed_by: str | None = Field(description="The worker id of the last claim.")
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


def curate_router(
    workflows: Sequence[Workflow],
    *,
    requeue_auth: Callable[..., Any] | None = None,
    dashboard_refresh_seconds: float = 5.0,
) -> APIRouter:
    """JSON endpoints and an HTML dashboard over ``workflows``, for the app to mount
    (``include_router``).

    ``GET /workflows``, ``GET /workflows/{name}``, ``GET /workflows/{name}/items/{item_id}``,
    ``GET /dashboard`` (an HTML page refreshing itself every ``dashboard_refresh_seconds``)
    and, only when ``requeue_auth`` (a FastAPI dependency that raises to refuse) is given,
    ``POST /workflows/{name}/requeue``, ``POST /workflows/{name}/pause`` and
    ``POST /workflows/{name}/resume``, and the dashboard's requeue buttons. Reads use the
    configured runtime's database, so the app runs `curate_lifespan` (or configures
    curate itself).
    """
    if not dashboard_refresh_seconds > 0:
        raise ValueError(
            f"dashboard_refresh_seconds must be > 0, not {dashboard_refresh_seconds!r}"
        )
    known: Mapping[str, Workflow] = {w.name: w for w in workflows}
    router = APIRouter(tags=["curate"])

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

    @router.get("/workflows", response_model=StatusReport)
    async def list_workflows() -> Any:
        """Every workflow's counts by status, oldest queued age, expired leases, errors."""
        engine = await get_runtime().database.engine()
        return await operations.read_status(engine, list(known.values()))

    @router.get(
        "/workflows/{name}", response_model=WorkflowStatus, responses={404: {"model": Problem}}
    )
    async def read_workflow(workflow: Annotated[Workflow, Depends(workflow_named)]) -> Any:
        """One workflow's counts by status, oldest queued age, expired leases, errors."""
        engine = await get_runtime().database.engine()
        [found] = (await operations.read_status(engine, [workflow])).workflows
        return found

    @router.get(
        "/workflows/{name}/items/{item_id}",
        response_model=ItemState,
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
        return item

    @router.get(
        "/dashboard",
        response_class=HTMLResponse,
        include_in_schema=False,
        name="curate_dashboard",
    )
    async def dashboard(request: Request) -> HTMLResponse:
        """The workflows' figures as an HTML page that refreshes itself."""
        engine = await get_runtime().database.engine()
        report = await operations.read_status(engine, list(known.values()))
        page = render_dashboard(
            report,
            base_path=request.url_for("curate_dashboard").path.removesuffix("/dashboard"),
            requeue=requeue_auth is not None,
            refresh_seconds=dashboard_refresh_seconds,
        )
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    if requeue_auth is not None:

        @router.post(
            "/workflows/{name}/requeue",
            response_model=RequeueResult,
            dependencies=[Depends(requeue_auth)],
            responses={
                400: {"model": Problem, "description": "The body is not JSON."},
                404: {"model": Problem},
            },
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
            dependencies=[Depends(requeue_auth)],
            responses={
                400: {"model": Problem, "description": "The body is not JSON."},
                404: {"model": Problem},
            },
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
            dependencies=[Depends(requeue_auth)],
            responses={404: {"model": Problem}},
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
