"""What one run needs to know besides the table: sizes, limits and the retry policy."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from curate.errors import NonRetryableError


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, up to ``max_attempts`` attempts in all.

    Attempt ``n`` (1-based) that fails is retried after ``base_seconds * 2 ** (n - 1)``,
    capped at ``max_seconds``; with ``jitter`` the wait is drawn from [half, whole] of that.
    Exceptions that are instances of ``non_retryable`` (and `NonRetryableError`) are final.
    """

    max_attempts: int = 3
    base_seconds: float = 2.0
    max_seconds: float = 600.0
    jitter: bool = True
    non_retryable: tuple[type[BaseException], ...] = ()

    def delay_seconds(self, attempt: int) -> float:
        """Seconds to wait before the attempt after ``attempt``."""
        delay: float = min(self.max_seconds, self.base_seconds * 2 ** max(attempt - 1, 0))
        if self.jitter:
            delay *= random.uniform(0.5, 1.0)
        return delay

    def should_retry(self, error: BaseException, attempt: int) -> bool:
        if isinstance(error, (NonRetryableError, *self.non_retryable)):
            return False
        return attempt < self.max_attempts


NO_RETRY = RetryPolicy(max_attempts=1)


@dataclass(frozen=True)
class RunConfig:
    """Limits of one run of one workflow."""

    batch_size: int = 10
    concurrency: int = 1
    timeout_seconds: float | None = 300.0
    lease_seconds: float = 60.0
    heartbeat_seconds: float = 15.0
    run_max_items: int = 10_000
    run_max_seconds: float = 60.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    stale_after_seconds: float | None = None
    """Seed-style tables without leases: rescue rows `updated_at` older than this."""
    rate_limit: float | None = None
    """Items per second the workflow may start, across all workers (None: no limit)."""
    batched_outcomes: bool = False
    """Write completions many at a time (see `curate.engine.batched`)."""
    max_snoozes: int = 100
    """Snoozes an item may take without spending an attempt, since it was last queued
    (`curate.Snooze`)."""


@dataclass(frozen=True)
class StatementLimits:
    """How long curate's own statements may take (claims, outcomes, heartbeats, rescues),
    so a lock held on a workflow's table (a migration) makes them give up and try again
    later instead of queueing behind it, each holding a connection. 0 means no limit.

    Applied per transaction or per call, never to a session, so they hold behind a pooler
    in transaction mode and never reach a service's own statements: `StatementLimits`
    goes to ``SET LOCAL`` in curate's own transactions, and ``statement_seconds`` to
    asyncpg's per-call timeout on its one-statement writes (`curate.engine.driver`).
    """

    lock_seconds: float
    statement_seconds: float

    @property
    def call_timeout(self) -> float | None:
        """asyncpg's ``timeout=`` for a statement run on its own (None: no limit)."""
        return self.statement_seconds or None
