"""The embedded PostgreSQL: started when no URL is configured, reused, stopped at exit."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import asyncio, sys
from pathlib import Path
from sqlalchemy import text
import curate

async def main() -> None:
    runtime = curate.configure(curate.CurateSettings(embedded_data_dir=Path(sys.argv[1])))
    engine = await runtime.database.engine()
    async with engine.connect() as conn:
        print((await conn.execute(text("SELECT current_setting('data_directory')"))).scalar())
    if sys.argv[2] == "hang":
        print("ready", flush=True)
        await asyncio.Event().wait()
    if sys.argv[2] == "close":
        await runtime.close()
        assert not (Path(sys.argv[1]) / "postmaster.pid").exists(), "close() left it running"
    else:
        await runtime.database.dispose()

curate.configure_logging("INFO")
asyncio.run(main())
"""

ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}


def run_with_embedded(data_dir: Path, mode: str = "exit") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, str(data_dir), mode],
        capture_output=True,
        text=True,
        timeout=120,
        env={**ENV, "HOME": str(data_dir.parent)},
    )


def test_embedded_server_starts_is_reused_and_stops_at_exit(tmp_path: Path) -> None:
    data_dir = tmp_path / "pgdata"

    first = run_with_embedded(data_dir)
    assert first.returncode == 0, first.stderr
    assert Path(first.stdout.strip()) == data_dir
    assert f"embedded PostgreSQL running, data directory {data_dir}" in first.stderr
    assert not (data_dir / "postmaster.pid").exists(), "the server outlived its last user"

    second = run_with_embedded(data_dir)  # same directory: reused, no new initdb
    assert second.returncode == 0, second.stderr
    assert Path(second.stdout.strip()) == data_dir
    assert not (data_dir / "postmaster.pid").exists()


def test_close_stops_it_and_a_killed_user_does_not_keep_it_running(tmp_path: Path) -> None:
    data_dir = tmp_path / "pgdata"
    closed = run_with_embedded(data_dir, "close")
    assert closed.returncode == 0, closed.stderr

    killed = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(data_dir), "hang"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**ENV, "HOME": str(tmp_path)},
    )
    assert killed.stdout is not None
    while killed.stdout.readline().strip() != "ready":
        assert killed.poll() is None, killed.stderr.read() if killed.stderr else ""
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    assert (data_dir / "postmaster.pid").exists()  # the killed process could not stop it

    last = run_with_embedded(data_dir)  # attaches, then is the last live user at exit
    assert last.returncode == 0, last.stderr
    assert not (data_dir / "postmaster.pid").exists()


def test_a_command_says_once_that_the_embedded_server_runs(tmp_path: Path) -> None:
    """``db upgrade`` and ``requeue`` open the database twice (their check, then the work):
    one server, so one line."""
    curate_command = str(Path(sys.executable).parent / "curate")
    env = {**ENV, "HOME": str(tmp_path), "CURATE_EMBEDDED_DATA_DIR": str(tmp_path / "pgdata")}
    running = "embedded PostgreSQL running"
    for command in (["db", "upgrade"], ["requeue", "sitemap_import", "--errors"]):
        done = subprocess.run(
            [curate_command, *command],
            capture_output=True,
            text=True,
            timeout=180,
            env=env,
            cwd=Path(__file__).resolve().parent.parent,  # the demo's project
        )
        assert done.returncode == 0, done.stderr
        assert done.stderr.count(running) == 1, done.stderr
