"""The embedded PostgreSQL: started when no URL is configured, reused, stopped at exit."""

from __future__ import annotations

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
    await runtime.database.dispose()

curate.configure_logging("INFO")
asyncio.run(main())
"""


def run_with_embedded(data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(data_dir.parent)},
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
