"""The benchmark harness keeps working: a smoke run of `bench/run.py --quick`.

Benchmarks are not tests; this runs curate and the naive loop with a tiny N (main venv, no
peer environments), the measures on a PostgreSQL of their own (per-item cost, many hosts,
network latency: tiny too, or a "skipped" line where this is not root), and curate's soak
on 2,000 rows for two 5-second intervals, into a temporary directory so the repository's
docs stay as they are, and checks that every measure produced its result lines and the
page its tables.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_benchmark_run(database_url: str, tmp_path: Path) -> None:
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    results_dir, docs_dir = tmp_path / "results", tmp_path / "docs"
    command = [sys.executable, "bench/run.py", "--quick", "--soak", "2", "--dsn", dsn]
    command += ["--results-dir", str(results_dir), "--docs-dir", str(docs_dir)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr

    [results] = results_dir.glob("*.jsonl")
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    failed = [line for line in lines if "error" in line]
    assert not failed, failed
    produced = {(line.get("system"), line["measure"]) for line in lines}
    assert produced >= {
        ("curate", "drain"),
        ("naive", "drain"),
        ("curate", "pickup"),
        ("naive", "pickup"),
        ("curate", "claim_cost"),
        ("curate", "item_cost"),
        ("curate", "hosts"),
        ("curate", "net_latency"),
        ("curate", "soak"),
        ("curate", "soak_summary"),
    }, produced
    drains = [line for line in lines if line["measure"] == "drain"]
    assert {line["config"] for line in drains if line["system"] == "curate"} == {
        "per_item",
        "batched",
    }

    minutes = [line for line in lines if line["measure"] == "soak"]
    assert [line["minute"] for line in minutes] == [1, 2]
    for line in minutes:
        assert line["done"] > 0 and line["claim_p99_ms"] is not None, line
        assert line["table_bytes"] > 0 and line["index_bytes"] > 0, line
    [soak] = [line for line in lines if line["measure"] == "soak_summary"]
    assert set(soak["targets"]) == {"keeps_up", "claim_p99", "growth"}, soak

    page = (docs_dir / "benchmarks.md").read_text()
    assert "This page comes from a quick run" in page
    headings = ("## Targets", "## Drain throughput", "## Pick-up latency", "## Claim cost")
    headings += ("## The realistic table", "## Many worker hosts", "## Network latency")
    headings += ("## Soak",)
    for heading in (*headings, "### curate (`pages`)"):
        assert heading in page
    assert "| curate | per_item | 1 |" in page
    assert "| curate | on |" in page
