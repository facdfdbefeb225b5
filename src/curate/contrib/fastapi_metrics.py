"""``GET /metrics`` for FastAPI apps (extras ``fastapi`` and ``metrics``).

::

    app = FastAPI(lifespan=curate_lifespan(WORKFLOWS, lifespan=metrics_lifespan))
    app.include_router(metrics_router(WORKFLOWS))

`metrics_lifespan` attaches the metrics to the runtime `curate_lifespan` configured, so
items count from the start; without it they count from the first scrape.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Response

from curate.metrics import CONTENT_TYPE_LATEST, install_metrics, render
from curate.runtime import get_runtime
from curate.workflow import Workflow


@asynccontextmanager
async def metrics_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """An app lifespan (pass it to `curate_lifespan`) that attaches the metrics at start-up."""
    install_metrics(get_runtime())
    yield


def metrics_router(workflows: Sequence[Workflow]) -> APIRouter:
    """A router with ``GET /metrics``: the queue gauges of ``workflows`` are read from
    the database, then every curate metric is returned in Prometheus' text format."""
    router = APIRouter()
    chosen = list(workflows)

    @router.get(
        "/metrics",
        response_class=Response,
        summary="curate's Prometheus metrics",
        include_in_schema=False,
    )
    async def metrics() -> Any:
        body = await render(get_runtime(), chosen)
        return Response(content=body, media_type=CONTENT_TYPE_LATEST)

    return router
