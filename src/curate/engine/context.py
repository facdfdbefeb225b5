"""What the pieces of one run share: the bound workflow, its statements, where to connect."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from sqlalchemy import Executable
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from curate.engine.binding import TableBinding
from curate.engine.cancel import RunningServices
from curate.engine.config import RunConfig, StatementLimits
from curate.engine.driver import DriverRow, execute_alone
from curate.engine.error_text import error_type, traceback_tail
from curate.engine.hooks import ErrorHook, ItemHook, Observer
from curate.sql import WorkflowStatements, history
from curate.sql.limits import SET_LOCAL_LIMITS, set_local_limits_params

ServiceFunction = Callable[[Any, AsyncSession], Awaitable[Any]]


@dataclass(frozen=True)
class RunContext:
    """Everything a run of one workflow needs, resolved before the run starts."""

    name: str
    binding: TableBinding
    statements: WorkflowStatements
    config: RunConfig
    service: ServiceFunction
    sessionmaker: async_sessionmaker[AsyncSession]
    worker_id: str
    limits: StatementLimits
    """The bounds of curate's own statements (`execute_alone`, `own_transaction`)."""
    item_hooks: tuple[ItemHook, ...] = ()
    """Wrap each item, outermost first: see `curate.engine.hooks`."""
    error_hooks: tuple[ErrorHook, ...] = ()
    """Hear of each failed item, in order: see `curate.engine.hooks`."""
    observers: tuple[Observer, ...] = ()
    """Hear of claims and rescues: see `curate.engine.hooks`."""
    services: RunningServices = field(default_factory=lambda: RunningServices(""))
    """This process's running services, where a cancel request finds them (one per
    process: `curate.Runtime` passes its own)."""
    tally: Callable[[str, str, int], None] | None = None
    """Hears each outcome as it is written: (workflow, `RunResult` counter, items). The
    dashboard's charts count them (`curate.engine.stats_recorder`)."""
    spare_sessions: list[AsyncSession] = field(default_factory=list)
    """Sessions closed cleanly after an item, for the next item of this run: a closed
    session is as good as new, and building one costs a tenth of a no-op item."""

    @cached_property
    def engine(self) -> AsyncEngine:
        """The engine the sessions are bound to."""
        engine: AsyncEngine = self.sessionmaker.kw["bind"]
        return engine

    async def execute_alone(
        self, statement: Executable, params: Mapping[str, Any]
    ) -> list[DriverRow]:
        """Run one of curate's statements as its own transaction, through the driver
        (`curate.engine.driver`), within the statement limit; its rows (an UPDATE's
        RETURNING)."""
        return await execute_alone(self.engine, statement, params, self.limits.call_timeout)

    def attempt_params(
        self,
        started_at: datetime | None,
        outcome: str | None = None,
        error: BaseException | None = None,
    ) -> dict[str, Any]:
        """What an outcome write records of the attempt, when the statements keep the
        attempt history (`curate.sql.history`; ignored by those that do not)."""
        return {
            **history.attempt_params(
                self.name,
                self.worker_id,
                started_at,
                outcome=outcome,
                error_type=error_type(error) if error is not None else None,
                traceback=traceback_tail(error) if error is not None else None,
            ),
            "curate_failed_status": self.binding.status_value(self.binding.statuses.failed),
        }

    @asynccontextmanager
    async def own_transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction of curate's own, its statements within the limits
        (``SET LOCAL``, which holds behind a transaction pooler too); committed at the end
        of the block."""
        async with self.sessionmaker() as session, session.begin():
            limits = self.limits
            if limits.lock_seconds or limits.statement_seconds:
                params = set_local_limits_params(limits.lock_seconds, limits.statement_seconds)
                await session.execute(SET_LOCAL_LIMITS, params)
            yield session


@dataclass(frozen=True)
class ClaimedItem:
    """One claim of one row: its id, the attempt number the claim counted and the claim's
    token (`curate.engine.claim.new_claim_token`). A row claimed again is another item."""

    id: Any
    attempt: int
    claim: str
    trace_context: str | None = None
    """The ``traceparent`` of the trace that queued the row, where the table keeps it."""


@dataclass
class RunResult:
    """What one run did, item by item outcome."""

    workflow: str
    claimed: int = 0
    completed: int = 0
    failed: int = 0
    retried: int = 0
    dropped: int = 0
    unrecorded: int = 0
    cancelled: int = 0
    snoozed: int = 0
    elapsed_seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    COUNTS = (
        "claimed",
        "completed",
        "failed",
        "retried",
        "dropped",
        "unrecorded",
        "cancelled",
        "snoozed",
    )

    def absorb(self, other: RunResult) -> None:
        """Add ``other``'s counts to these (a run that claimed again after a wake-up)."""
        for name in self.COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.elapsed_seconds += other.elapsed_seconds
        self.errors.extend(other.errors)

    @property
    def processed(self) -> int:
        """Items whose service ran to a recorded outcome."""
        return self.completed + self.failed + self.retried + self.cancelled + self.snoozed
