"""Connection arguments reach asyncpg with their types, from the URL's query and from
CURATE_DATABASE_CONNECT_ARGS; anything else is refused before a connection is tried."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

import curate
from curate import ConfigurationError, CurateSettings, Workflow, scheduling
from curate.db.connect_args import SETTINGS_PARAMETERS, URL_PARAMETERS
from curate.testing import wait_until
from tests.helpers import configured, insert_items, noop, status_counts
from tests.models import Item

DOCS = Path(__file__).parent.parent / "docs"


def with_query(url: str, **parameters: str) -> str:
    """``url`` with ``parameters`` added to its query."""
    return make_url(url).update_query_dict(parameters).render_as_string(hide_password=False)


async def asyncpg_connection(engine: AsyncEngine) -> Any:
    """The asyncpg connection under one of ``engine``'s pooled connections, still open."""
    async with engine.connect() as conn:
        return (await conn.get_raw_connection()).driver_connection


async def an_item_completes(runtime: curate.Runtime) -> None:
    engine = await runtime.database.engine()
    await insert_items(engine, 1)
    result = await Workflow("work", model=Item, service=noop).run()
    assert result.completed == 1
    assert await status_counts(engine) == {"Complete": 1}


async def test_url_query_parameters_reach_asyncpg_as_numbers(
    database_url: str, schema: str
) -> None:
    url = with_query(database_url, statement_cache_size="0", command_timeout="30")
    settings = CurateSettings(database_url=url, database_schema=schema, worker_id="test-worker")
    async with configured(settings) as runtime:
        await an_item_completes(runtime)
        connection = await asyncpg_connection(await runtime.database.engine())
        # asyncpg keeps both in its connection's private configuration only.
        assert connection._config.statement_cache_size == 0
        assert connection._config.command_timeout == 30.0


async def test_the_setting_reaches_asyncpg_and_wins_over_the_url(
    database_url: str, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "CURATE_DATABASE_CONNECT_ARGS",
        '{"statement_cache_size": 0, "server_settings": {"jit": "off"}}',
    )
    url = with_query(database_url, statement_cache_size="50", command_timeout="30")
    settings = CurateSettings(database_url=url, database_schema=schema, worker_id="test-worker")
    assert settings.database_connect_args == {
        "statement_cache_size": 0,
        "server_settings": {"jit": "off"},
    }
    async with configured(settings) as runtime:
        await an_item_completes(runtime)
        engine = await runtime.database.engine()
        connection = await asyncpg_connection(engine)
        assert connection._config.statement_cache_size == 0  # the setting's, not the URL's 50
        assert connection._config.command_timeout == 30.0  # the URL's: the setting has none
        async with engine.connect() as conn:
            shown = (
                await conn.execute(
                    text(
                        "SELECT current_setting('jit'), current_setting('application_name'),"
                        " current_setting('search_path')"
                    )
                )
            ).one()
    # The user's server_settings are merged with curate's, not put in their place.
    assert tuple(shown) == ("off", "curate test-worker", f"{schema},public")


async def test_sqlalchemys_own_parameter_stays_sqlalchemys(database_url: str, schema: str) -> None:
    url = with_query(database_url, prepared_statement_cache_size="0", statement_cache_size="0")
    settings = CurateSettings(database_url=url, database_schema=schema)
    async with configured(settings) as runtime:
        await an_item_completes(runtime)
        async with (await runtime.database.engine()).connect() as conn:
            adapted = (await conn.get_raw_connection()).dbapi_connection
            assert adapted._prepared_statement_cache is None  # SQLAlchemy's cache is off
        arguments = await runtime.database.asyncpg_arguments()
    assert arguments["statement_cache_size"] == 0
    assert "prepared_statement_cache_size" not in arguments  # asyncpg.connect has no such


async def test_the_listen_connection_takes_the_arguments_too(
    database_url: str, schema: str
) -> None:
    """Before, asyncpg's URL parser sent ``statement_cache_size`` to the server as a setting,
    which refused it: the LISTEN connection never came up."""
    url = with_query(database_url, statement_cache_size="0", command_timeout="30")
    settings = CurateSettings(database_url=url, database_schema=schema, worker_id="test-worker")
    work = Workflow("work", model=Item, service=noop, interval_seconds=60.0)

    async def process_pending_works() -> None:
        await work.run()

    async with configured(settings) as runtime:
        arguments = await runtime.database.asyncpg_arguments()
        assert (arguments["statement_cache_size"], arguments["command_timeout"]) == (0, 30.0)
        engine = await runtime.database.engine()
        await insert_items(engine, 1, status=None)
        scheduling.add_workflow_job(work, process_pending_works)
        scheduling.start_scheduler()
        try:
            notifier = runtime.notifier
            assert notifier is not None

            async def listening() -> bool:
                return notifier.connected.is_set()

            await wait_until(listening, what="the LISTEN connection")
            sessions = await runtime.database.sessionmaker()
            async with sessions() as session, session.begin():
                await work.queue(session, [1])

            async def done() -> bool:
                return await status_counts(engine) == {"Complete": 1}

            # The next poll is a minute away: a row done sooner was woken by NOTIFY.
            await wait_until(done, seconds=30, what="the row Complete")
        finally:
            await scheduling.shutdown_scheduler()


@pytest.mark.parametrize(
    ("refused", "expected", "accepted"),
    [
        (
            {"statement_cache_size": "off"},
            "CURATE_DATABASE_URL: query parameter statement_cache_size='off' is invalid:"
            " expected a whole number >= 0",
            {"statement_cache_size": "0"},
        ),
        (
            {"command_timeout": "30s"},
            "CURATE_DATABASE_URL: query parameter command_timeout='30s' is invalid:"
            " expected a number of seconds > 0",
            {"command_timeout": "30"},
        ),
        (
            {"direct_tls": "maybe"},
            "CURATE_DATABASE_URL: query parameter direct_tls='maybe' is invalid:"
            " expected true or false",
            {"direct_tls": "false"},
        ),
        (
            {"statement_cache": "0"},
            "CURATE_DATABASE_URL: unknown query parameter statement_cache; accepted: "
            + ", ".join(URL_PARAMETERS),
            {"statement_cache_size": "0"},
        ),
    ],
)
async def test_a_wrong_url_parameter_is_refused(
    database_url: str,
    schema: str,
    monkeypatch: pytest.MonkeyPatch,
    refused: dict[str, str],
    expected: str,
    accepted: dict[str, str],
) -> None:
    monkeypatch.setenv("CURATE_DATABASE_URL", with_query(database_url, **refused))
    with pytest.raises(ConfigurationError) as refusal:
        CurateSettings()
    assert expected in str(refusal.value)

    monkeypatch.setenv("CURATE_DATABASE_URL", with_query(database_url, **accepted))
    async with configured(CurateSettings(database_schema=schema)) as runtime:
        await an_item_completes(runtime)


@pytest.mark.parametrize(
    ("refused", "expected", "accepted"),
    [
        (
            '{"statement_cache_size": "0"}',
            "CURATE_DATABASE_CONNECT_ARGS: statement_cache_size='0' is invalid:"
            " expected a whole number >= 0",
            '{"statement_cache_size": 0}',
        ),
        (
            '{"server_settings": {"jit": false}}',
            "CURATE_DATABASE_CONNECT_ARGS: server_settings={'jit': False} is invalid:"
            " expected an object of text values",
            '{"server_settings": {"jit": "off"}}',
        ),
        (
            '{"statement_cache": 0}',
            "CURATE_DATABASE_CONNECT_ARGS: unknown parameter statement_cache; accepted: "
            + ", ".join(SETTINGS_PARAMETERS),
            '{"statement_cache_size": 0}',
        ),
        (
            "statement_cache_size=0",
            'error parsing value for field "database_connect_args"',
            '{"statement_cache_size": 0}',
        ),
    ],
)
async def test_a_wrong_connect_args_setting_is_refused(
    database_url: str,
    schema: str,
    monkeypatch: pytest.MonkeyPatch,
    refused: str,
    expected: str,
    accepted: str,
) -> None:
    monkeypatch.setenv("CURATE_DATABASE_URL", database_url)
    monkeypatch.setenv("CURATE_DATABASE_CONNECT_ARGS", refused)
    with pytest.raises(ConfigurationError) as refusal:
        CurateSettings()
    assert expected in str(refusal.value)

    monkeypatch.setenv("CURATE_DATABASE_CONNECT_ARGS", accepted)
    async with configured(CurateSettings(database_schema=schema)) as runtime:
        await an_item_completes(runtime)


def test_a_password_never_appears_in_a_refusal() -> None:
    url = "postgresql://app:pa55word@db.example:5432/app?statement_cache_size=off&secret=1"
    with pytest.raises(ConfigurationError) as refusal:
        CurateSettings(database_url=url)
    assert "pa55word" not in str(refusal.value)
    assert "CURATE_DATABASE_URL: unknown query parameter secret; accepted:" in str(refusal.value)
    assert "server settings go in CURATE_DATABASE_CONNECT_ARGS" in str(refusal.value)


def test_the_reference_lists_the_accepted_parameters() -> None:
    """docs/reference/settings.md's table of connection arguments against the code."""
    section = (DOCS / "reference" / "settings.md").read_text().split("## Connection arguments")[1]
    in_url, in_settings = set(), set()
    for names, where in re.findall(r"^\| (`[^|]+`) \| [^|]+ \| ([^|]+) \|", section, re.M):
        for name in re.findall(r"`(\w+)`", names):
            if "URL" in where:
                in_url.add(name)
            if "setting" in where:
                in_settings.add(name)
    assert sorted(in_url) == URL_PARAMETERS
    assert sorted(in_settings) == SETTINGS_PARAMETERS


def test_the_how_to_shows_the_real_refusal(database_url: str) -> None:
    with pytest.raises(ConfigurationError) as refusal:
        CurateSettings(database_url=with_query(database_url, statement_cache_size="off"))
    how_to = (DOCS / "how-to" / "configure.md").read_text()
    assert f"curate.errors.ConfigurationError: {refusal.value}" in how_to


KEEPALIVE_SETTINGS = (
    "tcp_keepalives_idle",
    "tcp_keepalives_interval",
    "tcp_keepalives_count",
    "tcp_user_timeout",
)


async def keepalive_settings(engine: AsyncEngine) -> tuple[str, ...]:
    async with engine.connect() as conn:
        return tuple([await conn.scalar(text(f"SHOW {name}")) for name in KEEPALIVE_SETTINGS])


async def test_each_connection_asks_the_server_to_probe_it(
    settings: CurateSettings, admin_engine: AsyncEngine
) -> None:
    """``CURATE_TCP_KEEPALIVE_SECONDS``: the server drops a silent worker (a partition:
    tests/test_partition.py) after about twice this, not after the system's two hours;
    0 leaves a connection with the server's own settings, as any other client's."""
    own = await keepalive_settings(admin_engine)
    assert own != ("20", "6", "3", "38000")
    async with configured(settings) as rt:  # the default, 20
        assert await keepalive_settings(await rt.database.engine()) == ("20", "6", "3", "38000")
    async with configured(settings.model_copy(update={"tcp_keepalive_seconds": 0})) as rt:
        assert await keepalive_settings(await rt.database.engine()) == own
