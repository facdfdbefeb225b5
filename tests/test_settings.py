"""Settings: environment names, conversions, and errors that say what is wrong."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from curate import ConfigurationError, CurateSettings, Workflow, WorkflowSettings
from tests.helpers import noop
from tests.models import Item


def test_plain_postgresql_urls_become_asyncpg_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CURATE_DATABASE_URL", "postgresql://app@db.example:5432/app")
    assert CurateSettings().database_url == "postgresql+asyncpg://app@db.example:5432/app"


def test_no_url_means_the_embedded_database() -> None:
    settings = CurateSettings()
    assert settings.database_url is None
    assert settings.embedded_data_dir.name == "pgdata"


def load_workflow_settings() -> WorkflowSettings:
    return Workflow("work", model=Item, service=noop).load_settings()


@pytest.mark.parametrize(
    ("variable", "value", "expected", "load"),
    [
        (
            "CURATE_DATABASE_URL",
            "mysql://root@localhost/app",
            "must start with postgresql",
            CurateSettings,
        ),
        ("CURATE_POOL_SIZE", "0", "greater than or equal to 1", CurateSettings),
        ("CURATE_POOL_SIZE", "many", "valid integer", CurateSettings),
        ("CURATE_LOG_LEVEL", "LOUD", "'TRACE', 'DEBUG', 'INFO'", CurateSettings),
        ("CURATE_DATABASE_SCHEMA", "Bad-Schema", "lower-case SQL identifier", CurateSettings),
        ("WORK_SCHEDULER_BATCH_SIZE", "0", "greater than or equal to 1", load_workflow_settings),
        ("WORK_SCHEDULER_INTERVAL_SECONDS", "-1", "greater than 0", load_workflow_settings),
        ("WORK_SCHEDULER_MAX_INSTANCES", "two", "valid integer", load_workflow_settings),
        (
            "WORK_SCHEDULER_CONCURRENCY",
            "100000",
            "less than or equal to 1000",
            load_workflow_settings,
        ),
    ],
)
def test_invalid_settings_name_the_variable_the_value_and_the_rule(
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    expected: str,
    load: Callable[[], object],
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as caught:
        load()
    message = str(caught.value)
    assert f"{variable}={value!r} is invalid" in message
    assert expected in message


def test_workflow_settings_use_the_seed_names_and_override_code(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WORK_SCHEDULER_INTERVAL_SECONDS", "2.5")
    monkeypatch.setenv("WORK_SCHEDULER_BATCH_SIZE", "40")
    flow = Workflow("work", model=Item, service=noop, batch_size=5, concurrency=3)
    settings = flow.load_settings()
    assert (settings.interval_seconds, settings.batch_size, settings.concurrency) == (2.5, 40, 3)
    assert settings.max_instances == WorkflowSettings.model_fields["max_instances"].default


def test_invalid_code_values_are_reported_like_environment_values() -> None:
    with pytest.raises(ConfigurationError, match="WORK_SCHEDULER_BATCH_SIZE=-3 is invalid"):
        Workflow("work", model=Item, service=noop, batch_size=-3).load_settings()


def test_dotenv_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("CURATE_POOL_SIZE=7\nWORK_SCHEDULER_BATCH_SIZE=11\n")
    monkeypatch.chdir(tmp_path)
    assert CurateSettings().pool_size == 7
    assert Workflow("work", model=Item, service=noop).load_settings().batch_size == 11


def test_workflow_names_must_be_snake_case() -> None:
    with pytest.raises(ConfigurationError, match="lower snake_case"):
        Workflow("Sitemap-Import", model=Item, service=noop)


def test_missing_columns_are_named_with_the_fix() -> None:
    flow = Workflow("thumbnail", model=Item, service=noop)
    with pytest.raises(ConfigurationError) as caught:
        _ = flow.binding
    assert "no column 'thumbnail_status'" in str(caught.value)
    assert "add_workflow_columns" in str(caught.value)
