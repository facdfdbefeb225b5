"""Connection arguments: the database URL's query and the settings, as asyncpg's keywords.

SQLAlchemy's asyncpg dialect hands every query parameter of the URL to ``asyncpg.connect``
as text, so ``?statement_cache_size=0`` fails inside asyncpg (``'<' not supported between
'str' and 'int'``); asyncpg's own URL parser sends a parameter it does not know to the
server as a startup parameter. Here each parameter curate accepts has a type: text from the
URL is converted, a value from ``CURATE_DATABASE_CONNECT_ARGS`` (JSON) is checked, and
anything else is refused, naming what is accepted.

The parameters SQLAlchemy reads itself stay in the URL for it: ``host`` and ``port``
(several hosts) and ``prepared_statement_cache_size`` (its adapter's own cache; checked
here). asyncpg's leave the URL and come back as typed keyword arguments.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from curate.errors import ConfigurationError

URL_VARIABLE = "CURATE_DATABASE_URL"
SETTINGS_VARIABLE = "CURATE_DATABASE_CONNECT_ARGS"
POOLING_VARIABLE = "CURATE_DATABASE_POOLING"


@dataclass(frozen=True)
class _Kind:
    """A parameter's type: ``parse`` reads URL text (ValueError when it does not fit);
    ``fits`` checks a JSON value, which must have the type already."""

    expected: str
    parse: Callable[[str], object] | None
    """None: not expressible in the URL."""
    fits: Callable[[object], bool]


def _parse_count(text: str) -> int:
    if not text.isdigit():
        raise ValueError(text)
    return int(text)


def _fits_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _parse_seconds(text: str) -> float:
    value = float(text)
    if not _fits_seconds(value):
        raise ValueError(text)
    return value


def _fits_seconds(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


_BOOLEAN_WORDS = {"true": True, "yes": True, "on": True, "1": True}
_BOOLEAN_WORDS |= {"false": False, "no": False, "off": False, "0": False}


def _parse_boolean(text: str) -> bool:
    if text.lower() not in _BOOLEAN_WORDS:
        raise ValueError(text)
    return _BOOLEAN_WORDS[text.lower()]


def _choice(*values: str, booleans: bool = False) -> _Kind:
    """One of ``values``; with ``booleans``, also true or false."""

    def fits(value: object) -> bool:
        return value in values or (booleans and isinstance(value, bool))

    def parse(text: str) -> object:
        value = _BOOLEAN_WORDS.get(text.lower(), text) if booleans else text
        if not fits(value):
            raise ValueError(text)
        return value

    return _Kind("one of " + ", ".join(values) + (", true, false" if booleans else ""), parse, fits)


def _fits_server_settings(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(item, str) for pair in value.items() for item in pair
    )


_COUNT = _Kind("a whole number >= 0", _parse_count, _fits_count)
_SECONDS = _Kind("a number of seconds > 0", _parse_seconds, _fits_seconds)
_BOOLEAN = _Kind("true or false", _parse_boolean, lambda value: isinstance(value, bool))
_TEXT = _Kind("text", str, lambda value: isinstance(value, str))
_SERVER_SETTINGS = _Kind("an object of text values", None, _fits_server_settings)
_SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")

DRIVER_PARAMETERS: Mapping[str, _Kind] = {
    "statement_cache_size": _COUNT,
    "max_cached_statement_lifetime": _COUNT,
    "max_cacheable_statement_size": _COUNT,
    "timeout": _SECONDS,
    "command_timeout": _SECONDS,
    "ssl": _choice(*_SSL_MODES, booleans=True),
    "sslmode": _choice(*_SSL_MODES),
    "sslrootcert": _TEXT,
    "direct_tls": _BOOLEAN,
    "target_session_attrs": _choice(
        "any", "primary", "standby", "prefer-standby", "read-write", "read-only"
    ),
    "passfile": _TEXT,
    "krbsrvname": _TEXT,
    "gsslib": _choice("gssapi", "sspi"),
    "server_settings": _SERVER_SETTINGS,
}
"""``asyncpg.connect``'s keyword arguments curate passes on (``sslmode`` is libpq's name
for ``ssl``; ``sslrootcert``, libpq's too, makes ``ssl`` an SSL context, `_ssl_arguments`)."""

ADAPTER_PARAMETERS: Mapping[str, _Kind] = {"prepared_statement_cache_size": _COUNT}
"""Read by SQLAlchemy's asyncpg adapter, from the URL or the connect arguments alike."""

STATEMENT_CACHES = ("statement_cache_size", "prepared_statement_cache_size")
"""asyncpg's cache of prepared statements and SQLAlchemy's adapter's."""

ADDRESS_PARAMETERS = ("host", "port")
"""SQLAlchemy's several-hosts form of the URL (``?host=a:5432&host=b:5432``): left to it."""

_KINDS = {**DRIVER_PARAMETERS, **ADAPTER_PARAMETERS}
SETTINGS_PARAMETERS = sorted(_KINDS)
URL_PARAMETERS = sorted(
    [name for name, kind in _KINDS.items() if kind.parse is not None] + list(ADDRESS_PARAMETERS)
)


@dataclass(frozen=True)
class ConnectArgs:
    """What SQLAlchemy's engine is given: the URL and the typed ``connect_args``."""

    url: str
    """The URL without asyncpg's query parameters (SQLAlchemy's own stay)."""
    arguments: dict[str, Any]
    """Keyword arguments for ``asyncpg.connect`` (through SQLAlchemy's ``connect_args``)."""

    def for_asyncpg(self) -> dict[str, Any]:
        """Every keyword of ``asyncpg.connect`` for a connection outside SQLAlchemy (LISTEN):
        the address as SQLAlchemy reads it from the URL, then the arguments, less those
        only SQLAlchemy's adapter takes."""
        url = make_url(self.url)
        _, address = url.get_dialect()().create_connect_args(url)
        merged = {**address, **self.arguments}
        return {name: value for name, value in merged.items() if name not in ADAPTER_PARAMETERS}


def connect_args(
    url: str,
    configured: Mapping[str, Any] | None = None,
    server_settings: Mapping[str, str] | None = None,
) -> ConnectArgs:
    """``url`` without asyncpg's query parameters, and asyncpg's arguments: the URL's
    converted to their types, ``configured`` (CURATE_DATABASE_CONNECT_ARGS) over them, and
    ``server_settings`` (curate's) under the configured ``server_settings``."""
    clean_url, from_url = url_connect_args(url)
    from_settings = settings_connect_args(configured or {})
    arguments = {**from_url, **from_settings}
    startup = {**(server_settings or {}), **from_settings.get("server_settings", {})}
    if startup:
        arguments["server_settings"] = startup
    return ConnectArgs(clean_url, arguments)


def url_connect_args(url: str, variable: str = URL_VARIABLE) -> tuple[str, dict[str, Any]]:
    """The URL without asyncpg's query parameters, and those parameters with their types;
    `ConfigurationError` naming ``variable`` (never the password) if one is wrong."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # older SQLAlchemy quotes the URL: say nothing of it
        raise ConfigurationError(
            f"{variable}: not a URL SQLAlchemy can read (is the port a number, and are"
            " special characters in the password %-escaped?)"
        ) from None
    unknown = sorted(set(parsed.query).difference(URL_PARAMETERS))
    if unknown:
        raise ConfigurationError(
            f"{variable}: unknown query parameter {', '.join(unknown)}; accepted:"
            f" {', '.join(URL_PARAMETERS)} (server settings go in {SETTINGS_VARIABLE}, e.g."
            ' {"server_settings": {"jit": "off"}})'
        )
    arguments: dict[str, Any] = {}
    for name, value in parsed.query.items():
        if name in ADDRESS_PARAMETERS:
            continue
        if not isinstance(value, str):
            raise ConfigurationError(
                f"{variable}: query parameter {name} is given {len(value)} times; give it once"
            )
        kind = _KINDS[name]
        assert kind.parse is not None  # the others are unknown here
        try:
            converted = kind.parse(value)
        except ValueError:
            raise ConfigurationError(
                f"{variable}: query parameter {name}={value!r} is invalid: expected {kind.expected}"
            ) from None
        if name in DRIVER_PARAMETERS:
            arguments[name] = converted
    clean = parsed.difference_update_query(DRIVER_PARAMETERS)
    return clean.render_as_string(hide_password=False), _ssl_arguments(arguments, variable)


def settings_connect_args(configured: Mapping[str, Any]) -> dict[str, Any]:
    """CURATE_DATABASE_CONNECT_ARGS checked against the same table (JSON values must have
    the type already); `ConfigurationError` naming the variable if one is wrong."""
    unknown = sorted(set(configured).difference(SETTINGS_PARAMETERS))
    if unknown:
        raise ConfigurationError(
            f"{SETTINGS_VARIABLE}: unknown parameter {', '.join(unknown)}; accepted:"
            f" {', '.join(SETTINGS_PARAMETERS)}"
        )
    for name, value in configured.items():
        kind = _KINDS[name]
        if not kind.fits(value):
            raise ConfigurationError(
                f"{SETTINGS_VARIABLE}: {name}={value!r} is invalid: expected {kind.expected}"
            )
    return _ssl_arguments(dict(configured), SETTINGS_VARIABLE)


def refuse_statement_caches(url: str | None, configured: Mapping[str, Any]) -> None:
    """Behind a transaction pooler both caches of named prepared statements are off
    (`curate.db.pooling`): one turned on in the URL or in the settings is refused, naming
    where, rather than silently overruled."""
    query = make_url(url).query if url is not None else {}
    for name in STATEMENT_CACHES:
        for variable, value in (
            (URL_VARIABLE, query.get(name)),
            (SETTINGS_VARIABLE, configured.get(name)),
        ):
            if value is not None and value not in (0, "0"):
                raise ConfigurationError(
                    f"{variable}: {name}={value!r} cannot be used with"
                    f" {POOLING_VARIABLE}=transaction, where no prepared statement may outlive"
                    " its transaction; give 0 or leave it out"
                )


def _ssl_arguments(arguments: dict[str, Any], variable: str) -> dict[str, Any]:
    """``sslmode`` (libpq's name, as in hosted databases' URLs) given as asyncpg's ``ssl``;
    with ``sslrootcert``, an SSL context verifying the server against that CA file."""
    if "sslmode" in arguments:
        if "ssl" in arguments:
            raise ConfigurationError(f"{variable}: give ssl or sslmode, not both")
        arguments["ssl"] = arguments.pop("sslmode")
    if "sslrootcert" in arguments:
        root = arguments.pop("sslrootcert")
        arguments["ssl"] = _verifying_context(arguments.get("ssl"), root, variable)
    return arguments


def _verifying_context(mode: object, root: str, variable: str) -> ssl.SSLContext:
    """libpq's ``sslrootcert``: the server's certificate must be signed by a CA of the file
    ``root`` (``system``: the system's CAs), and name the host with verify-full; require
    with a CA file verifies as verify-ca does, as in libpq. asyncpg reads the file only
    from its own DSN or the environment, so the context is built here."""
    full = mode in ("verify-full", True)
    if mode not in ("require", "verify-ca") and not full:
        raise ConfigurationError(
            f"{variable}: sslrootcert needs sslmode=verify-full (or verify-ca, require) beside"
            f" it, not {mode!r}"
        )
    if root == "system":
        if not full:  # any public certificate would pass, for any host
            raise ConfigurationError(f"{variable}: sslrootcert=system needs sslmode=verify-full")
        return ssl.create_default_context()
    try:
        context = ssl.create_default_context(cafile=root)
    except OSError as exc:  # missing, unreadable, not PEM certificates (ssl.SSLError)
        raise ConfigurationError(
            f"{variable}: sslrootcert={root!r} cannot be read as CA certificates: {exc}"
        ) from None
    context.check_hostname = full
    return context
