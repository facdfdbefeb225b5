"""How often each item's service really ran: an execution log kept outside the item's transaction.

Outcomes are fenced, so a row claimed twice still ends with one outcome and one committed
effect: counting outcomes or effects hides the double work. An execution log is written
at service start, outside the item's transaction, so an execution whose work was rolled
back or whose outcome was fenced out still counts.

Each `Execution` holds the item, the worker whose connection ran the service (the
``application_name`` curate gives its connections, less ``"curate "``) and the claim as
the service saw it: the row's ``<p>_claimed_by`` and ``<p>_attempts`` read in the
service's own session.

- `ExecutionLog(model, prefix)`: in memory, for workers in the test's own process (a
  Python list is outside any transaction).
- `ExecutionTable(model, prefix, engine)`: the table ``executions``, for worker processes
  (``tests.faults.worker``, uvicorn workers). Each process writes through an autocommit
  engine of its own, on the database and schema of the service's session. The test
  creates the table (`ExecutionTable.create`) and reads it through ``engine``.

Both have one API:

- ``await log.record(session, item_id)`` at the start of a service, or
  ``log.service(inner)``: a service that records, then runs ``inner``;
- ``await log.executions()`` -> ``list[Execution]``, ``await log.counts()`` -> ``Counter``
  of executions per item id;
- ``await log.assert_once_each(ids)``: each of ``ids`` ran exactly once and nothing else
  ran (no crash, no lease expiry);
- ``await log.assert_runs_within(limits)``: each item of ``limits`` ran at least once and
  at most ``limits[id]`` times, no two of its runs under one claim, nothing else ran (where
  workers crash or leases expire: the limit comes from the row's attempts and hand-backs);
- ``await log.close()``: let go of the writing engine (worker processes, at exit).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, ColumnElement, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from curate import ColumnNames

Service = Callable[[Any, AsyncSession], Awaitable[None]]

EXAMPLES = 5
"""Items shown in a failure message."""


@dataclass(frozen=True)
class Execution:
    """One start of a service: for which item, on which worker, under which claim."""

    item_id: Any
    worker: str
    claimed_by: str | None
    attempts: int | None

    @property
    def claim(self) -> tuple[str | None, int | None]:
        return self.claimed_by, self.attempts


class ExecutionLog:
    """Executions of the services of one workflow (``prefix``) over ``model``, in memory."""

    def __init__(self, model: Any, prefix: str) -> None:
        self.table: Table = getattr(model, "__table__", model)
        names = ColumnNames.for_prefix(prefix)
        assert names.claimed_by and names.attempts
        self.claimed_by = self.table.c[names.claimed_by]
        self.attempts = self.table.c[names.attempts]
        [self.pk] = self.table.primary_key.columns
        self._memory: list[Execution] = []

    async def record(self, session: AsyncSession, item_id: Any) -> Execution:
        """Call first thing in a service: reads the claim in ``session`` and logs it."""
        row = (await session.execute(self._claim_seen(item_id))).one()
        worker = row.application_name.removeprefix("curate ")
        execution = Execution(item_id, worker, row.claimed_by, row.attempts)
        await self._store(execution, row.schema, session)
        return execution

    def service(self, inner: Service) -> Service:
        """A service that records its execution, then runs ``inner``."""

        async def recorded(item_id: Any, session: AsyncSession) -> None:
            await self.record(session, item_id)
            await inner(item_id, session)

        return recorded

    async def executions(self) -> list[Execution]:
        return list(self._memory)

    async def counts(self) -> Counter[Any]:
        return Counter(execution.item_id for execution in await self.executions())

    async def assert_once_each(self, ids: Iterable[Any]) -> None:
        """Each of ``ids`` ran exactly once; no other item ran."""
        await self.assert_runs_within(dict.fromkeys(ids, 1))

    async def assert_runs_within(self, limits: Mapping[Any, int]) -> None:
        """Each item of ``limits`` ran at least once and at most ``limits[id]`` times, each
        run under a claim of its own; no other item ran."""
        executions = await self.executions()
        counts = Counter(execution.item_id for execution in executions)
        claims = Counter((execution.item_id, execution.claim) for execution in executions)
        wrong_count = {
            item
            for item in counts.keys() | limits.keys()
            if not 1 <= counts[item] <= limits.get(item, 0)
        }
        shared_claim = {item for (item, _), runs in claims.items() if runs > 1}
        if wrong_count or shared_claim:
            bad = sorted(wrong_count | shared_claim)
            raise AssertionError(_describe(executions, counts, limits, bad))

    async def close(self) -> None:
        """Nothing to let go of in memory."""

    async def _store(self, execution: Execution, schema: str, session: AsyncSession) -> None:
        self._memory.append(execution)

    def _claim_seen(self, item_id: Any) -> Any:
        def of_row(column: ColumnElement[Any]) -> Any:
            return select(column).where(self.pk == item_id).scalar_subquery()

        return select(
            func.current_setting("application_name").label("application_name"),
            func.current_schema().label("schema"),
            of_row(self.claimed_by).label("claimed_by"),
            of_row(self.attempts).label("attempts"),
        )


def _describe(
    executions: list[Execution], counts: Counter[Any], limits: Mapping[Any, int], bad: list[Any]
) -> str:
    spread = dict(sorted(Counter(counts.values()).items()))
    lines = [
        f"{len(executions)} executions of {len(counts)} items ({len(limits)} expected);"
        f" items by their number of runs: {spread}; {len(bad)} items wrong, such as:"
    ]
    for item in bad[:EXAMPLES]:
        seen = ", ".join(
            f"{e.worker} saw claim ({e.claimed_by}, attempt {e.attempts})"
            for e in executions
            if e.item_id == item
        )
        lines.append(
            f"  item {item}: ran {counts[item]} times, at most {limits.get(item, 0)}:"
            f" {seen or 'never ran'}"
        )
    return "\n".join(lines)


EXECUTIONS = Table(
    "executions",
    MetaData(),
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("item_id", Integer, nullable=False, index=True),
    Column("worker", String(200), nullable=False),
    Column("claimed_by", String(200)),
    Column("attempts", Integer),
)


class ExecutionTable(ExecutionLog):
    """Executions kept in the table ``executions``, for services in worker processes.

    A service records through an autocommit engine of this object's own (made on first
    use, on the service's database and schema), so each execution commits at once, apart
    from the item's transaction. ``engine`` (the test's) is where `executions` reads.
    """

    def __init__(self, model: Any, prefix: str, engine: AsyncEngine | None = None) -> None:
        super().__init__(model, prefix)
        self.engine = engine
        self._writer: AsyncEngine | None = None

    @staticmethod
    async def create(engine: AsyncEngine) -> None:
        async with engine.begin() as conn:
            await conn.run_sync(EXECUTIONS.metadata.create_all)

    async def executions(self) -> list[Execution]:
        assert self.engine is not None, "reading needs the test's engine"
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(
                    EXECUTIONS.c.item_id,
                    EXECUTIONS.c.worker,
                    EXECUTIONS.c.claimed_by,
                    EXECUTIONS.c.attempts,
                ).order_by(EXECUTIONS.c.id)
            )
            return [Execution(*row) for row in rows]

    async def close(self) -> None:
        if self._writer is not None:
            await self._writer.dispose()
            self._writer = None

    async def _store(self, execution: Execution, schema: str, session: AsyncSession) -> None:
        # The test's instrumentation, not the system under test: with EXECUTIONS_DATABASE_URL
        # (workers behind PgBouncer) it goes straight to the server, never waiting for one of
        # the pooler's connections while the service holds another (a pool-sized deadlock).
        direct = os.environ.get("EXECUTIONS_DATABASE_URL")
        url = make_url(direct) if direct else (await session.connection()).engine.url
        async with self._writer_for(url, schema).connect() as conn:
            await conn.execute(
                insert(EXECUTIONS).values(
                    item_id=execution.item_id,
                    worker=execution.worker,
                    claimed_by=execution.claimed_by,
                    attempts=execution.attempts,
                )
            )

    def _writer_for(self, url: URL, schema: str) -> AsyncEngine:
        if self._writer is None:
            # Connections as a transaction pooler allows them (the workers may run behind
            # PgBouncer): no named prepared statements, the schema named in each statement.
            self._writer = create_async_engine(
                url.render_as_string(hide_password=False),
                isolation_level="AUTOCOMMIT",
                pool_pre_ping=True,  # it outlives database restarts (tests.test_faults)
                connect_args={"statement_cache_size": 0, "prepared_statement_name_func": str},
                execution_options={"schema_translate_map": {None: schema}},
            )
        return self._writer
