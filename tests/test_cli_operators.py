"""``curate item`` and ``curate cancel`` as an operator runs them, in a process of their
own, on real PostgreSQL: what they print, their refusals beside the accepted forms, and
what they change."""

from __future__ import annotations

import json

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

import curate
from tests.cli_app import work
from tests.test_cli import (
    Complete,
    Curate,
    Error,
    Processing,
    Queued,
    add_items,
    ago,
    assert_one_line_error,
    items,
)
from tests.test_cli import cli as cli  # the fixture
from tests.test_cli import env as env  # the fixture's own fixture


@pytest.fixture
def settings(settings: curate.CurateSettings) -> curate.CurateSettings:
    """Every attempt recorded, completions too: the output shows both kinds."""
    return settings.model_copy(update={"attempt_history": "all"})


async def test_item_shows_the_row_and_its_attempts(
    runtime: curate.Runtime, engine: AsyncEngine, cli: Curate
) -> None:
    await add_items(
        engine,
        {"id": 1, "payload": "fail: bad input", "work_status": Queued},
        {"id": 2, "work_status": Queued},
    )
    await curate.testing.WorkflowHarness(runtime).drain(work)

    shown = await cli("item", "work", "1")
    assert shown.code == 0, shown
    lines = shown.out.splitlines()
    assert lines[0] == "work item 1 (table items)"
    assert "  status       Error" in lines
    assert "  error        NonRetryableError: fail: bad input" in lines
    assert "attempts, newest first (1):" in lines
    [attempt] = [line for line in lines if line.startswith("  #1 ")]
    assert attempt.startswith("  #1 failed in ") and attempt.endswith(" on test-worker")
    assert "      NonRetryableError: fail: bad input" in lines
    assert any("in process_single_work" in line for line in lines)  # the traceback's frames

    as_json = json.loads((await cli("item", "work", "2", "--json")).out)
    assert as_json["item"]["status"] == "Complete"
    [done] = as_json["attempts"]
    assert (done["outcome"], done["attempt"], done["error"]) == ("completed", 1, None)

    missing = await cli("item", "work", "3")
    assert (missing.code, missing.err) == (1, "no item 3 in items\n"), missing
    bad = await cli("item", "work", "three")
    assert_one_line_error(bad, 2, "'three' is not a valid int")


async def test_cancel_selectors_dry_run_and_refusals(
    runtime: curate.Runtime, engine: AsyncEngine, cli: Curate
) -> None:
    await add_items(
        engine,
        {"id": 1, "work_status": Queued},
        {"id": 2, "work_status": Queued, "work_error": "TimeoutError: slow, retrying"},
        {
            "id": 3,
            "work_status": Processing,
            "work_claimed_by": "gone#1",
            "work_lease_until": ago(5),
        },
        {"id": 4, "work_status": Error, "work_error": "TimeoutError: slow"},
        {"id": 5, "work_status": Complete},
    )

    nothing_said = await cli("cancel", "work")
    assert_one_line_error(nothing_said, 2, "say which rows to cancel")
    no_status = await cli("cancel", "work", "--errors")
    assert_one_line_error(no_status, 2, "has no cancelled status", "cancelled_status=")

    dry = await cli("cancel", "work", "--id", "1", "--id", "3", "--id", "4", "--dry-run")
    assert dry.out == (
        "would cancel 2 rows at once and 0 rows running of work with id 1, 3, 4\n"
    ), dry
    assert (await items(engine))[1].work_status == Queued

    by_error = await cli("cancel", "work", "--where-error", "timeout", "--reason", "upstream down")
    assert by_error.out == (
        "cancelled 1 row of work whose error contains 'timeout';"
        " asked the workers of 0 rows running\n"
    ), by_error
    rows = await items(engine)
    assert (rows[2].work_status, rows[2].work_error) == (Error, "Cancelled: upstream down")
    assert (rows[4].work_error, rows[1].work_status) == ("TimeoutError: slow", Queued)

    by_id = await cli("cancel", "work", "--id", "1", "--id", "3", "--id", "5")
    assert by_id.out == (
        "cancelled 2 rows of work with id 1, 3, 5; asked the workers of 0 rows running\n"
    ), by_id
    rows = await items(engine)
    assert [rows[i].work_status for i in (1, 3, 5)] == [Error, Error, Complete]
    assert rows[3].work_error == "Cancelled"
    bad = await cli("cancel", "work", "--id", "x")
    assert_one_line_error(bad, 2, "--id 'x' is not a valid int")
