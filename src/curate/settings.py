"""Settings: one object for the process, one per workflow, both read from the environment here.

This module is the edge: it is the only place curate reads environment variables or `.env`.
Everything else receives a `CurateSettings` or a `WorkflowSettings` built from them.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from curate.db.connect_args import (
    refuse_statement_caches,
    settings_connect_args,
    url_connect_args,
)
from curate.errors import ConfigurationError

LogLevel = Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"]

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


def default_worker_id() -> str:
    """host-pid-random: unique per process, readable in the `<p>_claimed_by` column."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def default_embedded_data_dir() -> Path:
    """A per-user directory for the embedded PostgreSQL, reused from run to run."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("curate")) / "pgdata"


class CurateSettings(BaseSettings):
    """Process-wide settings (`CURATE_*` environment variables or `.env`)."""

    model_config = SettingsConfigDict(
        env_prefix="CURATE_", env_file=".env", extra="ignore", validate_default=True
    )

    database_url: str | None = Field(
        default=None,
        description="postgresql+asyncpg:// or postgresql:// URL; unset = embedded PostgreSQL",
    )
    database_schema: str | None = Field(
        default=None, description="schema put first on the search_path of every connection"
    )
    database_connect_args: dict[str, Any] = Field(
        default_factory=dict,
        description="asyncpg connection arguments (a JSON object); win over the URL's query",
    )
    database_pooling: Literal["session", "transaction"] = Field(
        default="session",
        description="transaction: CURATE_DATABASE_URL goes through a pooler in transaction mode",
    )
    listen_database_url: str | None = Field(
        default=None,
        description="a direct connection for LISTEN (instant pick-up) beside a transaction pooler",
    )
    pool_size: int = Field(default=10, ge=1, le=1000)
    lock_timeout_seconds: float = Field(
        default=5.0,
        ge=0,
        description="how long curate's own transactions wait for a lock (0: no limit)",
    )
    statement_timeout_seconds: float = Field(
        default=30.0,
        ge=0,
        description="the longest one of curate's own statements may take (0: no limit)",
    )
    tcp_keepalive_seconds: int = Field(
        default=20,
        ge=0,
        le=3600,
        description=(
            "how long a connection of curate's may go silent before the database server"
            " probes it: a worker cut off by the network is dropped by the server after"
            " about twice this, with its transactions and their row locks (0: the server's"
            " own settings)"
        ),
    )
    worker_id: str = Field(default_factory=default_worker_id, min_length=1, max_length=200)
    log_level: LogLevel = "INFO"
    log_json: bool = Field(
        default=False, description="log one JSON object per line (loguru's serialize=True)"
    )
    log_to_logging: bool = Field(
        default=False, description="also hand curate's log records to standard logging"
    )
    embedded_data_dir: Path = Field(default_factory=default_embedded_data_dir)
    rescue_interval_seconds: float = Field(default=15.0, gt=0, le=86_400)
    shutdown_grace_seconds: float = Field(default=30.0, ge=0)
    listen_notify: bool = Field(
        default=True, description="wake workflows at once on NOTIFY; polling stays the fallback"
    )
    periodic_max_catch_up: int = Field(default=1, ge=0, le=1000)
    """Missed times of a periodic job run when it restarts (the latest ones); 0 skips them."""
    stats_interval_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description=(
            "how often each worker adds its outcome counts per minute and a queue-depth"
            " sample to curate_workflow_stats (the dashboard's charts), and at shutdown"
        ),
    )
    stats_retention_days: float = Field(
        default=7.0, gt=0, le=3650, description="rows of curate_workflow_stats kept this long"
    )
    tracing: bool = Field(
        default=False,
        description=(
            "trace items, claims and rescues with OpenTelemetry's global tracer provider"
            " (curate.contrib.tracing; needs the otel extra): how `curate run` workers,"
            " whose runtime the CLI makes, are traced"
        ),
    )
    attempt_history: Literal["all", "failures", "off"] = Field(
        default="failures",
        description=(
            "which attempts to record in curate_attempts (start, end, worker, outcome,"
            " error), in the outcome's own statement: all (a completion too: +1 row and"
            " about +40 µs of server CPU per item); failures (every attempt that did not"
            " complete: retries, failures, cancels, snoozes, rescues; nothing on the happy"
            " path); off"
        ),
    )
    attempt_history_per_item: int = Field(
        default=20, ge=1, le=10_000, description="the newest attempts kept of each item"
    )
    attempt_history_days: float = Field(
        default=30.0, gt=0, le=36_500, description="attempts older than this are deleted"
    )

    @field_validator("database_url", "listen_database_url")
    @classmethod
    def _asyncpg_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or value.strip() == "":
            return None
        value = value.strip()
        for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
            if value.startswith(prefix):
                value = "postgresql+asyncpg://" + value[len(prefix) :]
                # Its query parameters: known, of the right type.
                url_connect_args(value, f"CURATE_{info.field_name}".upper())
                return value
        raise ValueError(
            "must start with postgresql+asyncpg:// or postgresql:// (curate runs on asyncpg)"
        )

    @field_validator("database_schema")
    @classmethod
    def _schema_identifier(cls, value: str | None) -> str | None:
        if value is not None and not _IDENTIFIER.match(value):
            raise ValueError("must be a lower-case SQL identifier (letters, digits, _)")
        return value

    @field_validator("database_connect_args")
    @classmethod
    def _known_connect_args(cls, value: dict[str, Any]) -> dict[str, Any]:
        settings_connect_args(value)
        return value

    @model_validator(mode="after")
    def _no_statement_cache_behind_a_transaction_pooler(self) -> CurateSettings:
        if self.database_pooling == "transaction":
            refuse_statement_caches(self.database_url, self.database_connect_args)
        return self

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise _configuration_error(exc, "CURATE_") from None
        except SettingsError as exc:  # a JSON setting (CURATE_DATABASE_CONNECT_ARGS) is not JSON
            raise ConfigurationError(f"invalid settings:\n  {exc}: {exc.__cause__}") from None


class WorkflowSettings(BaseSettings):
    """Per-workflow settings, read from `<NAME>_SCHEDULER_*` (the seed's names).

    Values given in code (the `Workflow` spec) are defaults; the environment overrides them,
    so operators tune a deployment without touching code.
    """

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", validate_default=True)

    interval_seconds: float = Field(default=10.0, gt=0, le=86_400)
    batch_size: int = Field(default=10, ge=1, le=10_000)
    max_instances: int = Field(default=1, ge=1, le=100)
    concurrency: int = Field(default=1, ge=1, le=1_000)
    timeout_seconds: float = Field(default=300.0, gt=0)
    max_attempts: int = Field(default=3, ge=1, le=1_000)
    retry_base_seconds: float = Field(default=2.0, ge=0)
    retry_max_seconds: float = Field(default=600.0, ge=0)
    lease_seconds: float = Field(default=60.0, gt=0)
    heartbeat_seconds: float = Field(default=15.0, gt=0)
    run_max_items: int = Field(default=10_000, ge=1)
    run_max_seconds: float = Field(default=60.0, gt=0)
    stale_after_seconds: float | None = Field(default=None, gt=0)
    rate_limit: float | None = Field(default=None, gt=0, le=1_000_000)
    """Items per second this workflow may start, across all workers (None: no limit)."""
    max_snoozes: int = Field(default=100, ge=0, le=100_000)
    """Snoozes an item may take without spending an attempt, since it was last queued
    (`curate.Snooze`)."""

    @model_validator(mode="after")
    def _heartbeat_within_lease(self) -> WorkflowSettings:
        if self.heartbeat_seconds >= self.lease_seconds:
            raise ValueError(
                f"heartbeat_seconds ({self.heartbeat_seconds:g}) must be shorter than"
                f" lease_seconds ({self.lease_seconds:g}), or leases expire while items run"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment first: code values are only defaults.
        return env_settings, dotenv_settings, init_settings

    @staticmethod
    def env_prefix_for(workflow_name: str) -> str:
        return f"{workflow_name.upper()}_SCHEDULER_"

    @classmethod
    def load(cls, workflow_name: str, **code_values: Any) -> WorkflowSettings:
        """Build the settings of one workflow; invalid values raise `ConfigurationError`."""
        prefix = cls.env_prefix_for(workflow_name)
        try:
            return cls(_env_prefix=prefix, **code_values)  # type: ignore[call-arg]
        except ValidationError as exc:
            raise _configuration_error(exc, prefix) from None


def _configuration_error(exc: ValidationError, prefix: str) -> ConfigurationError:
    """Turn pydantic's report into one line per variable: name, value, what is allowed."""
    lines = []
    for error in exc.errors():
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, ConfigurationError):  # names the variable, hides any password
            lines.append(str(cause))
            continue
        field = "_".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if not field:  # a rule across several settings: the message names them
            lines.append(f"{prefix}*: {message}")
            continue
        variable = f"{prefix}{field}".upper()
        lines.append(f"{variable}={error.get('input')!r} is invalid: {message}")
    return ConfigurationError("invalid settings:\n  " + "\n  ".join(lines))
