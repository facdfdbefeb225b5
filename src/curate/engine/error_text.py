"""How a failure is stored and logged: ``ExceptionType: message``, safe for a PostgreSQL
text column.

A SQLAlchemy error's own text appends the whole statement, its parameters and a link to
SQLAlchemy's docs: for a claim that is a screenful, at every run. What the database said
is the driver's message, so that is the message kept.
"""

from __future__ import annotations

from sqlalchemy.exc import StatementError

ERROR_MAX_LENGTH = 2_000
"""Error texts longer than this are cut (with a marker) before they are stored."""


def format_error(error: BaseException) -> str:
    """``ExceptionType: message``, without NUL bytes, cut to `ERROR_MAX_LENGTH`; for a
    SQLAlchemy statement error, its type and the driver's message alone."""
    driver = error.orig if isinstance(error, StatementError) else None
    message = str(error if driver is None else driver)
    text = f"{type(error).__name__}: {message}" if message else type(error).__name__
    text = text.replace("\x00", "\\x00")
    if len(text) > ERROR_MAX_LENGTH:
        marker = f"… [{len(text)} characters in all, cut]"
        text = text[: ERROR_MAX_LENGTH - len(marker)] + marker
    return text
