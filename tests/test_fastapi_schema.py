"""The router against its own OpenAPI schema (schemathesis): generated requests, valid
and invalid, never get a 5xx, and every response matches the schema."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance
from sqlalchemy.ext.asyncio import AsyncEngine

import curate
from curate.contrib.fastapi import curate_router
from tests.cli_app import WORKFLOWS
from tests.test_fastapi import insert_rows

EXAMPLES = 100
"""Per operation; with a fixed seed the run is the same every time."""


async def allow() -> None:
    """Auth that lets every request through, so the requeue endpoint is tested too."""


APP = FastAPI()
APP.include_router(curate_router(WORKFLOWS, requeue_auth=allow), prefix="/curate")
SCHEMA = schemathesis.openapi.from_dict(APP.openapi())
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


@pytest.fixture
async def rows(engine: AsyncEngine) -> AsyncIterator[None]:
    await insert_rows(engine)
    yield


async def send(case: schemathesis.Case) -> httpx.Response:
    """One generated request, through the app in this process. A POST says it is JSON
    even without a body, as the router requires of every state-changing request."""
    kwargs = case.as_transport_kwargs(base_url="http://app")
    headers = kwargs.get("headers") or {}
    if kwargs["method"] == "POST":
        headers = {"Content-Type": "application/json", **headers}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=APP)) as client:
        return await client.request(
            kwargs["method"],
            kwargs["url"],
            params=kwargs.get("params"),
            headers=headers,
            json=kwargs.get("json"),
            content=kwargs.get("data"),
        )


@pytest.mark.parametrize("mode", list(GenerationMode))
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: op.label)
def test_no_server_errors_and_responses_match_the_schema(
    operation: schemathesis.APIOperation, mode: GenerationMode, rows: None
) -> None:
    if mode is GenerationMode.NEGATIVE and not operation.path_parameters and not operation.body:
        pytest.skip("no input to make invalid")
    loop = asyncio.new_event_loop()  # the app's engine lives on this loop, closed below

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: schemathesis.Case) -> None:
        response = loop.run_until_complete(send(case))
        assert response.status_code < 500, response.text
        # item_id is documented as a string: whether "7" is valid depends on the workflow's
        # key (int or UUID), so a schema-valid id may rightly get a 422.
        case.validate_response(response, excluded_checks=[positive_data_acceptance])

    try:
        check()
    finally:
        loop.run_until_complete(curate.get_runtime().database.dispose())
        loop.close()
