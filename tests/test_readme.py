"""The README's tutorial, run as a reader would: its files written out and executed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.DOTALL)


def python_files() -> dict[str, str]:
    """README python blocks that start with ``# <file>.py``, by file name."""
    files = {}
    for block in blocks("python"):
        first_line = block.splitlines()[0]
        if first_line.startswith("# ") and first_line.endswith(".py"):
            files[first_line[2:]] = block
    return files


def run(code: list[str], cwd: Path, database_url: str, schema: str) -> str:
    env = {
        **os.environ,
        "CURATE_DATABASE_URL": database_url,
        "CURATE_DATABASE_SCHEMA": schema,
        "PYTHONPATH": str(cwd),
    }
    done = subprocess.run(
        [sys.executable, *code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_tutorial_prints_what_the_readme_says(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    files = python_files()
    assert set(files) == {"thumbnails.py", "thumbnail_scheduler.py"}
    for name, code in files.items():
        (tmp_path / name).write_text(code)

    output = run(["thumbnails.py"], tmp_path, database_url, schema)

    expected = next(block for block in blocks("text") if block.startswith("completed"))
    assert output == expected


def test_the_tutorial_scheduler_module_registers_its_job(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    for name, code in python_files().items():
        (tmp_path / name).write_text(code)
    check = (
        "import curate, thumbnail_scheduler as module\n"
        "from curate import scheduling\n"
        "curate.configure()\n"
        "module.setup_thumbnail_scheduler()\n"
        "print([job.id for job in scheduling.get_scheduler().get_jobs()])\n"
    )
    output = run(["-c", check], tmp_path, database_url, schema)
    assert output.strip() == "['process_pending_thumbnails']"
