"""How a failure is stored and logged: ``ExceptionType: message``, safe for a PostgreSQL
text column.

A SQLAlchemy error's own text appends the whole statement, its parameters and a link to
SQLAlchemy's docs: for a claim that is a screenful, at every run. What the database said
is the driver's message, so that is the message kept.
"""

from __future__ import annotations

import traceback

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


TRACEBACK_FRAMES = 5
"""How many of a traceback's innermost frames the attempt history keeps."""


def error_type(error: BaseException) -> str:
    """The exception's class as ``module.QualifiedName`` (builtins without the module)."""
    kind = type(error)
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def traceback_tail(error: BaseException) -> str | None:
    """The innermost `TRACEBACK_FRAMES` frames of where ``error`` was raised, as Python
    prints them (without the exception line: that is the error's message); None without
    a traceback."""
    if error.__traceback__ is None:
        return None
    frames = traceback.extract_tb(error.__traceback__)[-TRACEBACK_FRAMES:]
    return "".join(traceback.format_list(frames)).replace("\x00", "\\x00")[: ERROR_MAX_LENGTH * 4]
