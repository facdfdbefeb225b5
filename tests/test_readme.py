"""The README's tutorial, run as a reader would: its commands, in order, in a shell."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def tutorial_commands() -> str:
    [block] = re.findall(r"<!-- tutorial -->\n```bash\n(.*?)```", README.read_text(), re.DOTALL)
    return block


def test_the_tutorial_gives_a_running_tested_workflow(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    script = tutorial_commands().replace("/tmp/photoapp", str(tmp_path / "photoapp"))
    script = script.replace("CURATE_DATABASE_SCHEMA=photoapp", f"CURATE_DATABASE_SCHEMA={schema}")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("CURATE_") and key != "VIRTUAL_ENV"
    }
    env |= {
        "CURATE_DATABASE_URL": database_url,
        "CURATE_TEST_DATABASE_URL": database_url,
        "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
    }
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "1 passed" in done.stdout
    assert "added 3 photos" in done.stdout
    assert "thumbnail: 3 complete, 0 failed" in done.stdout
    status_table = done.stdout[done.stdout.rindex("Workflow") :]
    assert re.search(r"thumbnail\s+0\s+0\s+3\s+0", status_table), status_table
