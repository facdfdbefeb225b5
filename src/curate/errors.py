"""The exceptions curate raises, in one place, so users know what to catch.

CurateError
├── ConfigurationError      bad settings, an invalid workflow spec, a missing column
├── DatabaseUnavailableError no database URL works and the embedded server cannot start
├── StatementTimeoutError   one of curate's own statements ran out of time (a locked table)
└── NonRetryableError       raised by a service: record ``Error`` now, do not retry
"""

from __future__ import annotations


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


class ItemTimeoutError(TimeoutError):
    """The service did not finish within the workflow's timeout (stored as the error)."""
