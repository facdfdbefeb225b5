"""curate's loguru records handed to standard logging (`curate.logs.propagate_to_logging`)."""

from __future__ import annotations

import inspect
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from loguru import logger
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

import curate
from curate import ColumnNames, NonRetryableError, RetryPolicy, Statuses, Workflow, scheduling
from curate.logs import propagate_to_logging
from tests.helpers import insert_items, noop
from tests.models import Item, SeedItem, SeedStatus

ROOT = Path(__file__).resolve().parent.parent


class Collect(logging.Handler):
    """A standard handler, as an app's alerting has: it keeps what reaches it."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def _propagation_off() -> Iterator[None]:
    """Each test starts and ends with propagation off, as a process does."""
    propagate_to_logging(False)
    yield
    propagate_to_logging(False)


@pytest.fixture
def collected() -> Iterator[Collect]:
    """What reaches the ``curate`` logger's handlers, INFO and up."""
    handler = Collect()
    curate_logger = logging.getLogger("curate")
    level = curate_logger.level
    curate_logger.addHandler(handler)
    curate_logger.setLevel(logging.INFO)
    yield handler
    curate_logger.removeHandler(handler)
    curate_logger.setLevel(level)


async def broken(item_id: int, session: AsyncSession) -> None:
    raise ValueError(f"photo {item_id} is broken")


async def refused(item_id: int, session: AsyncSession) -> None:
    raise NonRetryableError(f"photo {item_id} is not a photo")


async def run_one_failing_item(engine: AsyncEngine, service: Any = broken) -> None:
    await insert_items(engine, 1)
    await Workflow("work", model=Item, service=service, retry=RetryPolicy(max_attempts=1)).run()


def seed_workflow(name: str = "seed") -> Workflow:
    """A workflow on a table without lease columns: registering it logs a WARNING."""
    statuses = Statuses(
        queued=SeedStatus.queued,
        processing=SeedStatus.processing,
        complete=SeedStatus.complete,
        failed=SeedStatus.error,
    )
    columns = ColumnNames(status="status", error="error")
    return Workflow(name, model=SeedItem, service=noop, statuses=statuses, columns=columns)


async def test_curates_records_reach_standard_logging(
    runtime: curate.Runtime, engine: AsyncEngine, collected: Collect
) -> None:
    propagate_to_logging()
    propagate_to_logging()  # idempotent: each record still arrives once
    await run_one_failing_item(engine)

    [failed] = [r for r in collected.records if r.levelno == logging.ERROR]
    assert failed.name == "curate.engine.outcome"
    assert failed.levelname == "ERROR"
    assert failed.getMessage().startswith("[work 1 attempt 1] failed: ValueError")
    assert (failed.curate_workflow, failed.curate_item_id, failed.curate_attempt) == (  # type: ignore[attr-defined]
        "work",
        "1",
        1,
    )
    assert failed.curate_worker == "test-worker"  # type: ignore[attr-defined]
    assert failed.exc_info is not None and isinstance(failed.exc_info[1], ValueError)
    # A standard formatter prints the traceback once, from exc_info.
    text = logging.Formatter().format(failed)
    assert text.count("Traceback (most recent call last)") == 1
    assert "photo 1 is broken" in text

    [done] = [r for r in collected.records if "run done" in r.getMessage()]
    assert (done.name, done.levelname, done.curate_workflow) == (  # type: ignore[attr-defined]
        "curate.engine.loop",
        "INFO",
        "work",
    )
    assert all(r.name.startswith("curate.") for r in collected.records)


async def test_a_non_retryable_error_is_one_line_without_a_traceback(
    runtime: curate.Runtime, engine: AsyncEngine, collected: Collect
) -> None:
    """The service's own verdict, as Celery's expected exceptions: the message says it."""
    propagate_to_logging()
    await run_one_failing_item(engine, refused)
    [failed] = [r for r in collected.records if r.levelno == logging.ERROR]
    assert failed.getMessage() == (
        "[work 1 attempt 1] failed: NonRetryableError: photo 1 is not a photo"
    )
    assert failed.exc_info is None


async def test_nothing_reaches_standard_logging_when_off(
    runtime: curate.Runtime, engine: AsyncEngine, collected: Collect
) -> None:
    await run_one_failing_item(engine)
    assert collected.records == []


async def test_the_standard_loggers_level_applies(
    runtime: curate.Runtime, engine: AsyncEngine, collected: Collect
) -> None:
    logging.getLogger("curate").setLevel(logging.WARNING)
    propagate_to_logging()
    await run_one_failing_item(engine)
    assert [r.levelname for r in collected.records] == ["ERROR"]


async def test_the_setting_turns_it_on_at_start(
    runtime: curate.Runtime, collected: Collect, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime.register(seed_workflow())
    assert collected.records == []

    monkeypatch.setattr(runtime.settings, "log_to_logging", True)  # CURATE_LOG_TO_LOGGING
    scheduling.start_scheduler()
    runtime.register(seed_workflow("seed_again"))
    await scheduling.shutdown_scheduler()
    [warning] = collected.records
    assert (warning.name, warning.levelname) == ("curate.runtime", "WARNING")
    assert "has no lease column" in warning.getMessage()


def test_an_intercept_handler_of_the_apps_own_gets_no_loop(
    settings: curate.CurateSettings, collected: Collect, capsys: pytest.CaptureFixture[str]
) -> None:
    """An app that routes standard logging into loguru with loguru's documented
    InterceptHandler: curate's record comes back to loguru once, and stops there (without
    it, loguru would refuse to re-enter the sink and print an error)."""

    class InterceptHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            frame, depth = inspect.currentframe(), 0
            while frame is not None and (
                depth == 0 or frame.f_code.co_filename == logging.__file__
            ):
                frame, depth = frame.f_back, depth + 1
            logger.opt(depth=depth, exception=record.exc_info).log(
                record.levelname, record.getMessage()
            )

    intercept = InterceptHandler()
    logging.getLogger().addHandler(intercept)
    try:
        propagate_to_logging()
        curate.Runtime(settings).register(seed_workflow())
    finally:
        logging.getLogger().removeHandler(intercept)
    assert [r.name for r in collected.records] == ["curate.runtime"]
    assert "Logging error in Loguru" not in capsys.readouterr().err


SCRIPT = """
import logging
import curate
from loguru import logger
from tests.test_log_propagation import Collect, seed_workflow

collected = Collect()
logging.getLogger("curate").addHandler(collected)
curate.propagate_to_logging()
curate.configure_logging("INFO")  # routes standard logging into loguru; propagation stays
settings = curate.CurateSettings(database_url="postgresql://localhost/unused")
with logger.contextualize(workflow="seed", item_id="42", attempt=2):
    curate.Runtime(settings).register(seed_workflow())
for record in collected.records:
    print(record.name, record.levelname, record.getMessage())
"""


def test_with_configure_logging_each_line_appears_once() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=ROOT,
    )
    [handled] = done.stdout.splitlines()  # standard logging had it once
    assert handled.startswith("curate.runtime WARNING [seed 42 attempt 2] workflow seed:")
    shown = [line for line in done.stderr.splitlines() if "has no lease column" in line]
    assert len(shown) == 1, done.stderr  # loguru's sink too: it did not come back
