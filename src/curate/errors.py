"""The exceptions curate raises, in one place, so users know what to catch.

CurateError
├── ConfigurationError      bad settings, an invalid workflow spec, a missing column
├── DatabaseUnavailableError no database URL works and the embedded server cannot start
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


class NonRetryableError(CurateError):
    """Raise from a service function when retrying cannot help (bad input, missing data).

    The item goes straight to its failed status, whatever the retry policy says.
    """


class ItemTimeoutError(TimeoutError):
    """The service did not finish within the workflow's timeout (stored as the error)."""
