"""curate's single-statement writes, run by the driver itself (asyncpg), not through
SQLAlchemy's execution layer.

Profiles of a no-op drain put SQLAlchemy's per-execution work (execution context, result
proxy, connection wrapper events) at a third of an item's cost in the per-item mode.
These statements are built once per workflow, so they are compiled once to the driver's
SQL; each execution only converts the parameters, sends the statement on a pooled
connection (outside a transaction: one statement is its own transaction; inside one where
a transaction pooler needs it, `curate.db.pooling`) and converts the returned columns
back through their SQLAlchemy types.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Executable
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

from curate.db.pooling import fetch_alone
from curate.engine.backoff import is_connection_error
from curate.engine.pool_agent import in_greenlet
from curate.errors import StatementTimeoutError

Processor = Callable[[Any], Any] | None


class DriverRow:
    """A returned row: columns by attribute, as SQLAlchemy's rows give them."""

    __slots__ = ("_values",)

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass(frozen=True)
class DriverStatement:
    """A statement compiled once: its SQL, the order of its parameters, and the type
    conversions of its parameters and returned columns."""

    sql: str
    names: tuple[str, ...]
    defaults: tuple[Any, ...]
    """The statement's own values (``attempts + 1`` binds its 1), for names not passed."""
    bind: tuple[Processor, ...]
    result: dict[str, Processor]

    @classmethod
    def compile(cls, statement: Executable, dialect: Dialect) -> DriverStatement:
        assert isinstance(statement, ClauseElement)
        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        if compiled.literal_execute_params:
            # Values inlined at execution (the status the partial index names) are
            # rendered now. Rendering wants a value for every parameter, so the others
            # get a placeholder here and stay parameters. (Only the claim, a SELECT, has
            # such values; params() would refuse an UPDATE.)
            required = {name: None for name, bind in compiled.binds.items() if bind.required}
            compiled = statement.params(required).compile(
                dialect=dialect, compile_kwargs={"render_postcompile": True}
            )
            assert isinstance(compiled, SQLCompiler)
        names = tuple(compiled.positiontup or ())
        bind = tuple(
            compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            for name in names
        )
        columns = getattr(statement, "exported_columns", ())
        result = {
            column.key: column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in columns
        }
        defaults = tuple(compiled.binds[name].effective_value for name in names)
        return cls(compiled.string, names, defaults, bind, result)

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        values = (
            params.get(name, default)
            for name, default in zip(self.names, self.defaults, strict=True)
        )
        return [
            process(value) if process is not None else value
            for value, process in zip(values, self.bind, strict=True)
        ]

    def row(self, record: Any) -> DriverRow:
        values = {}
        for key, value in record.items():
            process = self.result.get(key)
            values[key] = process(value) if process is not None and value is not None else value
        return DriverRow(values)


_compiled: dict[int, tuple[Executable, DriverStatement]] = {}
"""Statement → its driver form. Keyed by identity; the entry keeps the statement alive, so
an id is never reused while it is here (curate's statements live as long as their
workflows anyway)."""


def driver_statement(statement: Executable, dialect: Dialect) -> DriverStatement:
    entry = _compiled.get(id(statement))
    if entry is None or entry[0] is not statement:
        entry = (statement, DriverStatement.compile(statement, dialect))
        _compiled[id(statement)] = entry
    return entry[1]


async def execute_alone(
    engine: AsyncEngine,
    statement: Executable,
    params: Mapping[str, Any],
    cancel_after: float | None = None,
) -> list[DriverRow]:
    """Run ``statement`` as its own transaction on a pooled connection; its rows.

    With ``cancel_after`` (seconds), a statement still running then is cancelled on the
    server (asyncpg sends a cancel request, which a pooler passes on) and
    `StatementTimeoutError` is raised; the connection goes back to the pool, usable.

    The pool's own connection is used, without a SQLAlchemy Connection around it (the
    statement leaves no transaction open). The checkout and the checkin run in a greenlet
    (`in_greenlet`), where SQLAlchemy can await: handing a connection back may close it
    (an overflow connection when the pool is full), and invalidating it closes it. The
    statement itself is awaited directly.

    A broken connection means the server went away or restarted: as SQLAlchemy does for
    its own executions, this connection is thrown away and every pooled connection older
    than it is replaced at its next checkout, so the caller's retry gets a fresh one. A
    cancelled statement (the task was cancelled) leaves its connection mid-protocol: it is
    thrown away too, never handed to the next caller.
    """
    compiled = driver_statement(statement, engine.dialect)
    arguments = compiled.arguments(params)
    pool_engine = engine.sync_engine
    raw = await in_greenlet(pool_engine.raw_connection)
    try:
        driver: Any = raw.driver_connection
        records = await fetch_alone(driver, compiled.sql, *arguments, timeout=cancel_after)
    except Exception as exc:
        timed_out = _timed_out(exc, cancel_after)
        if timed_out is not None:
            raise timed_out from exc
        if is_connection_error(exc):
            await in_greenlet(pool_engine.pool._invalidate, raw, exc)
        raise
    except BaseException as exc:
        await in_greenlet(raw.invalidate, exc)
        raise
    finally:
        await in_greenlet(raw.close)
    return [compiled.row(record) for record in records]


def _timed_out(exc: Exception, cancel_after: float | None) -> StatementTimeoutError | None:
    """curate's error for asyncpg's own timeout of a call given ``cancel_after`` (it has
    no errno; a network's TimeoutError has one); None for any other error."""
    if cancel_after is None or not isinstance(exc, TimeoutError) or exc.errno is not None:
        return None
    return StatementTimeoutError(cancel_after)
