"""How a failure is stored: ``ExceptionType: message``, safe for a PostgreSQL text column."""

from __future__ import annotations

ERROR_MAX_LENGTH = 2_000
"""Error texts longer than this are cut (with a marker) before they are stored."""


def format_error(error: BaseException) -> str:
    """``ExceptionType: message``, without NUL bytes, cut to `ERROR_MAX_LENGTH`."""
    message = str(error)
    text = f"{type(error).__name__}: {message}" if message else type(error).__name__
    text = text.replace("\x00", "\\x00")
    if len(text) > ERROR_MAX_LENGTH:
        marker = f"… [{len(text)} characters in all, cut]"
        text = text[: ERROR_MAX_LENGTH - len(marker)] + marker
    return text
