"""The limits of one of curate's own transactions, set at its start for it alone
(``set_config(..., true)`` is ``SET LOCAL``, with parameters)."""

from __future__ import annotations

from sqlalchemy import Select, bindparam, func, select

SET_LOCAL_LIMITS: Select[tuple[str, str]] = select(
    func.set_config("lock_timeout", bindparam("curate_lock_timeout"), True),
    func.set_config("statement_timeout", bindparam("curate_statement_timeout"), True),
)


def set_local_limits_params(lock_seconds: float, statement_seconds: float) -> dict[str, str]:
    """The limits in PostgreSQL's unit, milliseconds; 0 turns a limit off."""
    return {
        "curate_lock_timeout": _milliseconds(lock_seconds),
        "curate_statement_timeout": _milliseconds(statement_seconds),
    }


def _milliseconds(seconds: float) -> str:
    return str(max(1, round(seconds * 1000))) if seconds > 0 else "0"
