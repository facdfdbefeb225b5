"""The exceptions curate raises, in one place, so users know what to catch.

CurateError
├── ConfigurationError      bad settings, an invalid workflow spec, a missing column
├── DatabaseUnavailableError no database URL works and the embedded server cannot start
├── StatementTimeoutError   one of curate's own statements ran out of time (a locked table)
├── NonRetryableError       raised by a service: record ``Error`` now, do not retry
├── Snooze                  raised by a service: not now, again later; no attempt spent
└── SnoozeLimitError        recorded for a snooze that had to spend its attempt
"""

from __future__ import annotations

from datetime import timedelta


class CurateError(Exception):
    """Base class of every exception curate raises on purpose."""


class ConfigurationError(CurateError, ValueError):
    """A setting, a workflow spec or the table behind it is not usable.

    The message names the setting (or column), the value seen and what is allowed.
    """


class DatabaseUnavailableError(CurateError):
    """No database could be reached or started."""


class StatementTimeoutError(CurateError):
    """One of curate's own statements (a claim, an outcome) ran past
    ``CURATE_STATEMENT_TIMEOUT_SECONDS`` and was cancelled on the server.

    Usually a lock held on the workflow's table (a migration): curate gives up rather than
    wait, and the next run, beat or rescue tries again.
    """

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"curate's statement was cancelled after {seconds:g} s"
            " (CURATE_STATEMENT_TIMEOUT_SECONDS): is its table locked, by a migration say?"
        )
        self.seconds = seconds


class NonRetryableError(CurateError):
    """Raise from a service function when retrying cannot help (bad input, missing data).

    The item goes straight to its failed status, whatever the retry policy says.
    """


class Snooze(CurateError):
    """Raise from a service to run the item again later, without spending an attempt:
    ``raise curate.Snooze(60)`` or ``raise curate.Snooze(timedelta(minutes=5))``.

    The service's transaction is rolled back and the row goes back to Queued, due after
    ``seconds``. A workflow allows ``max_snoozes`` since the row was last queued
    (``<NAME>_SCHEDULER_MAX_SNOOZES``; counted in ``<prefix>_snoozes``, reset by a queue or
    a requeue); past that, or on a table without that column, a snooze spends the attempt
    like a retry, so a service that always snoozes still ends.
    """

    def __init__(self, seconds: float | timedelta) -> None:
        delay = seconds.total_seconds() if isinstance(seconds, timedelta) else float(seconds)
        if not 0 <= delay <= MAX_SNOOZE_SECONDS:
            raise ConfigurationError(
                f"Snooze({seconds!r}): the delay must be between 0 and {MAX_SNOOZE_SECONDS:g} s"
            )
        super().__init__(f"snoozed for {delay:g} s")
        self.seconds = delay


MAX_SNOOZE_SECONDS = 366 * 86_400.0
"""The longest snooze: a year (and a day)."""


class SnoozeLimitError(CurateError):
    """A `Snooze` that could not be taken without spending the attempt: the item had
    snoozed ``max_snoozes`` times already, or its table has no ``<prefix>_snoozes``
    column. Recorded as the attempt's failure (retried after the snooze's delay while
    attempts remain), so a service that always snoozes still ends."""


class ItemTimeoutError(TimeoutError):
    """The service did not finish within the workflow's timeout (stored as the error)."""
