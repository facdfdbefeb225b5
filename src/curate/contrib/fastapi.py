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
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path

from curate import operations, scheduling
from curate.contrib.api_models import (
    CancelRequest,
    CancelResult,
    ItemState,
    PauseRequest,
    PauseResult,
    Problem,
    RequeueRequest,
    RequeueResult,
    StatusReport,
    WorkflowStatus,
)
from curate.contrib.dashboard_routes import add_dashboard_routes
from curate.contrib.web_security import cross_site_guard as cross_site_guard  # public here
from curate.contrib.web_security import redact_attempts, redact_item, redact_report
from curate.contrib.web_security import redact_secrets as redact_secrets  # public here
from curate.errors import ConfigurationError
from curate.preflight import check_at_start
from curate.runtime import configure, get_runtime
from curate.settings import CurateSettings
from curate.sql import RequeueSelection
from curate.sql.cancel import CancelSelection
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


# --- the router ------------------------------------------------------------------------------

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
    (with the item's attempts) and ``GET /dashboard`` (an HTML page refreshing itself every
    ``dashboard_refresh_seconds``), with its item lists, item pages and charts and their
    JSON (`curate.contrib.dashboard_routes`), behind ``read_auth`` when given (a FastAPI
    dependency that raises to refuse); every error text they show passes through
    ``redact_error``. Only when ``requeue_auth`` is given: ``POST /workflows/{name}/requeue``,
    ``/cancel``, ``/pause`` and ``/resume`` behind it, and the dashboard's requeue and
    cancel buttons. Before that auth runs, those refuse what another site's page may send
    (`cross_site_guard`; pages of ``allowed_origins`` may post too). Reads use the
    configured runtime's database, so the app runs `curate_lifespan` (or configures curate
    itself).
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
        """One item's processing state in the workflow, and its attempts."""
        [typed_id] = _typed_ids(workflow, [item_id], field=("path", "item_id"))
        engine = await get_runtime().database.engine()
        item = await operations.read_item(engine, workflow, typed_id)
        if item is None:
            raise HTTPException(
                status_code=404, detail=f"no item {item_id} in {workflow.binding.table.name}"
            )
        attempts = await operations.read_attempts(engine, workflow, typed_id)
        history = None if attempts is None else redact_attempts(attempts, redact_error)
        return {**asdict(redact_item(item, redact_error)), "history": history}

    add_dashboard_routes(
        router,
        list(known.values()),
        workflow_named=workflow_named,
        reads=reads,
        requeue=requeue_auth is not None,
        redact_error=redact_error,
        refresh_seconds=dashboard_refresh_seconds,
    )

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

        @router.post(
            "/workflows/{name}/cancel",
            response_model=CancelResult,
            dependencies=writes,
            responses={400: _NOT_JSON, 409: {"model": Problem}, **_WRITE_REFUSALS},
        )
        async def cancel(
            workflow: Annotated[Workflow, Depends(workflow_named)], request: CancelRequest
        ) -> CancelResult:
            """Cancel the chosen rows: those waiting end cancelled at once; the worker of
            each running one cancels it where it runs and records it. 409 when the
            workflow cannot take the request (no cancelled status for ``errors``; no
            ``curate_cancellations`` table for running rows)."""
            selection = CancelSelection(
                _typed_ids(workflow, request.ids, field=("body", "ids")),
                request.errors,
                request.where_error,
            )
            runtime = get_runtime()
            engine = await runtime.database.engine()
            try:
                done = await operations.cancel(
                    engine,
                    workflow,
                    selection,
                    request.reason,
                    record_history=runtime.settings.attempt_history != "off",
                )
            except ConfigurationError as refused:
                raise HTTPException(status_code=409, detail=str(refused)) from None
            return CancelResult(workflow=workflow.name, cancelled=done.waiting, asked=done.running)

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
