"""Run the whole benchmark in one command: curate and its peers, one PostgreSQL, one results file.

    python bench/run.py                     # the full run (< 30 min on 2 cores)
    python bench/run.py --quick             # the smoke run: curate and naive, tiny N
    python bench/run.py --only curate,pgqueuer
    python bench/run.py --skip-peers
    python bench/run.py --only curate,pgqueuer --measures item_cost,hosts
    python bench/run.py --soak 30           # the full run, then the 30-minute soak
    python bench/run.py --soak 3 --soak-rows 50000 --soak-only   # a short soak alone

Every step is a subprocess (a runner in bench/runners/) with a timeout; its JSON line, or a
line with "error" when it fails, is appended to bench/results/<UTC timestamp>.jsonl, after a
"meta" line (machine, PostgreSQL, Python and package versions, this command line). At the end
bench/render.py turns the file into docs/benchmarks.md and docs/benchmarks.png.

Some measures start a PostgreSQL of their own instead (`OWN_SERVER`: the per-item cost,
bench/item_cost.py; many worker hosts, bench/hosts.py; the network latency, bench/latency.py,
its workers on a host of their own a round trip away): they run as root, after the others,
and write a line per case; where this machine cannot run them (not root, no network
namespaces) their line says "skipped" and why, and the run goes on. The smoke runs them at
tiny sizes.

The soak (bench/soak.py) runs only when asked, after the other steps and outside their
--budget-minutes: curate for MINUTES on a table of --soak-rows, then PgQueuer for as long at
the producer rate curate's soak measured and used; their minute lines go into the results
file as they come, and its section and plot (docs/benchmarks-soak.png) into the page. As root
both run on a stock PostgreSQL of their own (bench/own_server.py: autovacuum on, fsync on),
started for the soak and deleted after it; else (or with --soak-server dsn) on --dsn.

The peers' environments are created when missing: bench/.venv-peers (Procrastinate,
PgQueuer, matplotlib) with this Python, bench/.venv-oban (Oban for Python) with Python 3.12
(--python312, else `pyenv prefix 3.12`). The server at --dsn is only used, never reconfigured.
Standard library only, so any Python >= 3.11 runs it.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import math
import os
import platform
import queue
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RUNNERS = BENCH / "runners"
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"

PEERS_PACKAGES = [
    "procrastinate",
    "pgqueuer",
    "psutil",
    "asyncpg",
    "sqlalchemy",
    "apscheduler<4",
    "psycopg[binary]",
    "matplotlib",
]
OBAN_PACKAGES = ["oban", "psutil", "asyncpg"]
# Each environment: its directory, and the distributions whose versions the meta line records.
ENVS = {
    "main": (
        ROOT / ".venv",
        ["curate-workflows", "sqlalchemy", "asyncpg", "apscheduler", "psutil"],
    ),
    "peers": (BENCH / ".venv-peers", ["procrastinate", "pgqueuer", "psycopg", "asyncpg"]),
    "oban": (BENCH / ".venv-oban", ["oban", "asyncpg"]),
}
SYSTEM_ENV = {
    "curate": "main",
    "procrastinate": "peers",
    "pgqueuer": "peers",
    "oban": "oban",
    "naive": "main",
}
SYSTEMS = list(SYSTEM_ENV)
# LISTEN/NOTIFY on and off where the system allows it: the naive loop only polls, PgQueuer
# and Oban for Python always LISTEN (their runners ignore --notify off).
NOTIFY_MODES = {"naive": ("off",), "pgqueuer": ("on",), "oban": ("on",)}


@dataclass(frozen=True)
class Sizes:
    """How big each measure is: the full run, or the smoke run of --quick."""

    drain_n: tuple[int, ...]
    workers: tuple[int, ...]
    naive_n: int
    slow_peer_n: tuple[int, ...]  # Procrastinate: ~250-500 jobs/s, so 10,000 only
    slow_peer_cap: float
    latency_seconds: float
    claim_rows: tuple[int, ...]
    drain_cap: dict[int, float]  # --max-seconds per N
    naive_cap: float
    soak_rows: int
    soak_minute_seconds: float  # the soak's reporting interval: a minute, or 5 s in the smoke


FULL = Sizes(
    drain_n=(10_000, 100_000),
    workers=(1, 2, 4),
    naive_n=1_000,
    slow_peer_n=(10_000,),
    slow_peer_cap=120,
    latency_seconds=10,
    claim_rows=(10_000, 1_000_000, 10_000_000),
    drain_cap={10_000: 90, 100_000: 150},
    naive_cap=120,
    soak_rows=1_000_000,
    soak_minute_seconds=60,
)
QUICK = Sizes(
    drain_n=(200,),
    workers=(1,),
    naive_n=50,
    slow_peer_n=(200,),
    slow_peer_cap=30,
    latency_seconds=2,
    claim_rows=(10_000,),
    drain_cap={200: 30},
    naive_cap=30,
    soak_rows=2_000,
    soak_minute_seconds=5,
)
LATENCY_RATE = 50
CLAIM_QUEUED = 1_000
# Seconds a step may take beyond its own bound: interpreter start, schema, queueing N rows.
SETUP_ALLOWANCE = 60
SETUP_PER_ITEM = 0.0008  # queueing 100,000 rows: +80 s
STOP_GRACE_SECONDS = 15
CLAIM_TIMEOUT = {10_000: 90, 1_000_000: 240, 10_000_000: 600}
SOAK_MINUTES = 30
SOAK_SYSTEMS = ("curate", "pgqueuer")  # in this order: PgQueuer runs at curate's rate
# A soak step's time beyond its minutes: start-up, calibration (up to 300 s), loading rows.
SOAK_ALLOWANCE = 420
SOAK_SETUP_PER_ROW = 0.0003  # 1,000,000 rows and their VACUUM: +300 s


@dataclass(frozen=True)
class Step:
    """One subprocess of the run and the fields its result line is tagged with."""

    system: str
    measure: str
    args: list[str]
    timeout: float
    tags: dict[str, Any] = field(default_factory=dict)
    script: Path | None = None  # default: bench/runners/<system>_runner.py
    streams: bool = False
    """Its lines of other measures (the soak's minutes) go into the results as they come."""
    own_server: bool = False
    """Its script starts a PostgreSQL of its own (so it gets no --dsn) and prints one result
    line per case, all of which go into the results (see `OwnServer`)."""
    unmet: str | None = None
    """Why this machine cannot run it (not root, say): a line saying so, not a failure."""
    expected: float | None = None
    """Seconds it is expected to take, where its measure has no rule for it."""

    @property
    def label(self) -> str:
        extra = " ".join(f"{k}={v}" for k, v in self.tags.items())
        return f"{self.measure} {self.system} {extra}".strip()

    def argv(self, python: Path, dsn: str) -> list[str]:
        script = self.script or RUNNERS / f"{self.system}_runner.py"
        if self.own_server:
            return [str(python), str(script), *self.args]
        command = self.args[0]
        return [str(python), str(script), command, "--dsn", dsn, *self.args[1:]]

    def within(self, seconds: float) -> Step:
        """This step cut to ``seconds`` in all; a drain's own bound shrinks with it."""
        if seconds >= self.timeout:
            return self
        args = list(self.args)
        if "--max-seconds" in args:  # leave the runner time to set up and report
            at = args.index("--max-seconds") + 1
            setup = 10 + SETUP_PER_ITEM / 8 * int(self.tags.get("n", 0))
            args[at] = f"{max(5.0, min(float(args[at]), seconds - setup)):.0f}"
        return replace(self, args=args, timeout=seconds)


# --- the plan -----------------------------------------------------------------------------


def drain_step(
    system: str, config: str, n: int, workers: int, extra: list[str], cap: float
) -> Step:
    args = ["drain", "--n", str(n), "--workers", str(workers), *extra]
    args += ["--max-seconds", f"{cap:g}"]
    timeout = cap + SETUP_ALLOWANCE + SETUP_PER_ITEM * n
    tags = {"config": config, "n": n, "workers": workers}
    return Step(system, "drain", args, timeout, tags)


CURATE_CONFIGS = {
    "per_item": ["--concurrency", "10", "--batch-size", "100"],
    "batched": ["--concurrency", "100", "--batch-size", "1000"],
}
"""curate's two modes, each in the configuration that suits it: per item, ten items in
flight (each holds a connection for its outcome); batched, claims and completion writes
of 1,000 items with 100 in flight (the no-op items hold no connection)."""


def drain_steps(sizes: Sizes, systems: list[str]) -> Iterator[Step]:
    for n in sizes.drain_n:
        cap = sizes.drain_cap[n]
        if "curate" in systems:
            for mode, options in CURATE_CONFIGS.items():
                for workers in sizes.workers:
                    yield drain_step("curate", mode, n, workers, ["--mode", mode, *options], cap)
        if "procrastinate" in systems and n in sizes.slow_peer_n:
            yield drain_step("procrastinate", "default", n, 1, [], sizes.slow_peer_cap)
        if "pgqueuer" in systems:
            yield drain_step("pgqueuer", "default", n, 1, [], cap)
            yield drain_step("pgqueuer", "batch 100", n, 1, ["--batch-size", "100"], cap)
        if "oban" in systems:
            for limit in (10, 100):
                yield drain_step("oban", f"limit {limit}", n, 1, ["--limit", str(limit)], cap)
    if "naive" in systems:
        yield drain_step("naive", "default", sizes.naive_n, 1, [], sizes.naive_cap)


def latency_steps(sizes: Sizes, systems: list[str]) -> Iterator[Step]:
    for system in systems:
        for notify in NOTIFY_MODES.get(system, ("on", "off")):
            args = ["latency", "--rate", str(LATENCY_RATE)]
            args += ["--seconds", f"{sizes.latency_seconds:g}", "--notify", notify]
            timeout = sizes.latency_seconds + SETUP_ALLOWANCE
            yield Step(system, "pickup", args, timeout, {"notify": notify})


def claim_steps(sizes: Sizes, systems: list[str], use_runner: bool) -> Iterator[Step]:
    if "curate" not in systems:
        return
    for rows in sizes.claim_rows:
        args = ["claim-cost", "--rows", str(rows), "--queued", str(CLAIM_QUEUED)]
        script = None if use_runner else BENCH / "claim_cost.py"
        yield Step(
            "curate", "claim_cost", args, CLAIM_TIMEOUT.get(rows, 600), {"rows": rows}, script
        )


def soak_step(sizes: Sizes, system: str, minutes: int, rows: int, rate: Any = None) -> Step:
    """One system's soak; PgQueuer's with the ``rate`` curate's soak produced at."""
    args = ["run", "--system", system, "--minutes", str(minutes), "--rows", str(rows)]
    args += ["--minute-seconds", f"{sizes.soak_minute_seconds:g}"]
    if rate is not None:
        args += ["--rate", str(rate)]
    timeout = minutes * sizes.soak_minute_seconds + SOAK_ALLOWANCE + SOAK_SETUP_PER_ROW * rows
    tags = {"minutes": minutes, "rows": rows}
    return Step(system, "soak_summary", args, timeout, tags, BENCH / "soak.py", streams=True)


@dataclass(frozen=True)
class OwnServer:
    """A measure whose script starts a PostgreSQL of its own (tests/dedicated_server.py, as
    root), so that no other client blurs it, and prints one JSON line per case."""

    measure: str
    script: str
    """Under bench/, run with the main environment's Python."""
    full: tuple[str, ...]
    quick: tuple[str, ...]
    """Its arguments in the full run, and in the smoke run (--quick)."""
    seconds: float
    quick_seconds: float
    """What it is expected to take in each; twice that and SETUP_ALLOWANCE bound it."""
    netns: bool = False
    """It also makes network namespaces (ip, of iproute2)."""
    peer: str | None = None
    """A peer it also measures when the run has it: ``--<peer>-python`` its environment's."""
    says: Callable[[dict[str, Any]], str] = str
    """What the log says of one of its lines."""


def item_cost_says(line: dict[str, Any]) -> str:
    history = {None: "", False: ", history off", True: ", history on"}[line.get("history")]
    return (
        f"{line['table']} {line['mode']}{history}: {line['items_per_s']:,} items/s;"
        f" per item {line['wal_bytes']:,} WAL bytes, {line['btree_records']} B-tree records"
    )


def hosts_says(line: dict[str, Any]) -> str:
    shares = " / ".join(f"{host['share']:.0%}" for host in line["per_host"])
    once = "yes" if line["done_once"] else "NO"
    return f"{line['hosts']} host(s): {line['items_per_s']:,.0f} items/s ({shares}), once: {once}"


def net_latency_says(line: dict[str, Any]) -> str:
    if line.get("measure") != "net_latency":
        return str({k: v for k, v in line.items() if k not in ("argv", "links", "relay")})
    link = "direct" if line["link"] == "direct" else f"relay {line['rtt_ms']:g} ms"
    figure = line.get("per_second") or line.get("p50_ms")
    unit = "items/s" if line["kind"] == "drain" else "ms p50"
    return f"{link} {line['system']} {line['config']} {line['kind']}: {figure} {unit}"


OWN_SERVER = (
    OwnServer(
        "item_cost",
        "item_cost.py",
        full=("--rows", "50000", "--items", "10000"),
        quick=("--rows", "2000", "--items", "200"),
        seconds=90,
        quick_seconds=20,
        peer="pgqueuer",
        says=item_cost_says,
    ),
    OwnServer(
        "hosts",
        "hosts.py",
        full=("--hosts", "1,2,4", "--n", "20000", "--max-seconds", "120"),
        quick=("--hosts", "1,2", "--n", "200", "--max-seconds", "30"),
        seconds=75,
        quick_seconds=10,
        netns=True,
        says=hosts_says,
    ),
    OwnServer(
        "net_latency",
        "latency.py",
        full=(),
        quick=("--quick",),
        seconds=420,
        quick_seconds=30,
        netns=True,
        peer="pgqueuer",
        says=net_latency_says,
    ),
)
"""One more is a line here and its section in bench/render.py (`OWN_SERVER_SECTIONS`)."""


MEASURES = ["drain", "pickup", "claim_cost", *(own.measure for own in OWN_SERVER)]
"""What --measures chooses from (the soak has its own options)."""


def unmet(own: OwnServer) -> str | None:
    """Why this machine cannot run ``own`` (it is then skipped), or None."""
    if os.geteuid() != 0:
        return "skipped: needs root" + (" and network namespaces" if own.netns else "")
    if own.netns and shutil.which("ip") is None:
        return "skipped: needs network namespaces (ip, of iproute2, is missing)"
    return None


def own_server_steps(quick: bool, systems: list[str], skipped: dict[str, str]) -> Iterator[Step]:
    """The OWN_SERVER measures when curate is in the run; each one's peer with it when the
    run has the peer and its environment."""
    if "curate" not in systems:
        return
    for own in OWN_SERVER:
        args = list(own.quick if quick else own.full)
        if own.peer in systems and own.peer not in skipped:
            args += [f"--{own.peer}-python", str(env_python(SYSTEM_ENV[own.peer]))]
        expected = own.quick_seconds if quick else own.seconds
        timeout = 2 * expected + SETUP_ALLOWANCE
        yield Step(
            "curate",
            own.measure,
            args,
            timeout,
            script=BENCH / own.script,
            own_server=True,
            unmet=unmet(own),
            expected=expected,
        )


def runner_has(system: str, command: str) -> bool:
    """Whether bench/runners/<system>_runner.py lists a sub-command (e.g. claim-cost)."""
    script = RUNNERS / f"{system}_runner.py"
    python = env_python(SYSTEM_ENV[system])
    if not (script.is_file() and python.exists()):
        return False
    done = subprocess.run(
        [str(python), str(script), "--help"], capture_output=True, text=True, timeout=60
    )
    return command in done.stdout


def plan(args: argparse.Namespace, sizes: Sizes, skipped: dict[str, str]) -> list[Step]:
    """The steps of the run, but the soak's: those of the measures and systems asked for."""
    if args.soak_only:
        return []
    systems = args.systems
    use_runner = runner_has("curate", "claim-cost") or not (BENCH / "claim_cost.py").is_file()
    steps = [
        *drain_steps(sizes, systems),
        *latency_steps(sizes, systems),
        *claim_steps(sizes, systems, use_runner),
        *own_server_steps(args.quick, systems, skipped),
    ]
    return [step for step in steps if step.measure in args.measures]


# --- environments -------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def env_python(env: str) -> Path:
    return ENVS[env][0] / "bin" / "python"


def find_python312(given: str | None) -> Path | None:
    """--python312, else `pyenv prefix 3.12`, else python3.12 on PATH or under ~/.pyenv."""
    if given:
        return Path(given)
    try:
        prefix = subprocess.run(
            ["pyenv", "prefix", "3.12"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()
        if prefix:
            return Path(prefix.splitlines()[0]) / "bin" / "python"
    except (OSError, subprocess.SubprocessError):
        pass
    found = shutil.which("python3.12")
    if found:
        return Path(found)
    candidates = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python")))
    return Path(candidates[-1]) if candidates else None


# The pip requirements of each bench environment; each one's import name is its own name.
ENV_NEEDS = {"peers": PEERS_PACKAGES, "oban": OBAN_PACKAGES}


def module_name(requirement: str) -> str:
    return re.split(r"[<>=\[]", requirement)[0]


def env_ready(env: str) -> bool:
    """The environment exists and imports everything its runners (and render) need."""
    python = env_python(env)
    if not python.exists():
        return False
    modules = [module_name(r) for r in ENV_NEEDS[env]] if env in ENV_NEEDS else ["curate"]
    code = "import " + ", ".join(modules)
    return (
        subprocess.run([str(python), "-c", code], capture_output=True, timeout=120).returncode == 0
    )


def install_env(env: str, base_python: Path) -> str | None:
    """Create (when absent) and fill a bench environment with pip; the error, or None."""
    directory = ENVS[env][0]
    log(f"preparing {directory.relative_to(ROOT)} with {base_python} (pip, a few minutes)")
    python = str(env_python(env))
    commands = [[python, "-m", "pip", "install", "--quiet", *ENV_NEEDS[env]]]
    if not env_python(env).exists():
        commands[:0] = [
            [str(base_python), "-m", "venv", str(directory)],
            [python, "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
        ]
    for command in commands:
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as error:
            return f"{shlex.join(command)}: {error}"
        if done.returncode != 0:
            return f"{shlex.join(command)} exited {done.returncode}: {tail(done.stderr)}"
    return None if env_ready(env) else f"{directory.relative_to(ROOT)} still misses packages"


def ensure_envs(systems: list[str], python312: str | None, create: bool) -> dict[str, str]:
    """Make the environments the systems need; {system: why it cannot run} for the others.

    The peers' environment is also where render.py draws the plot (matplotlib); a run
    without Procrastinate or PgQueuer plots only if it is already there."""
    missing: dict[str, str] = {}
    wanted = {SYSTEM_ENV[s] for s in systems}
    for env in sorted(wanted):
        if env_ready(env):
            continue
        if env == "main":
            error: str | None = "the main .venv is missing or broken: run ./scripts/bootstrap"
        elif not create:
            error = f"{ENVS[env][0].relative_to(ROOT)} is not ready (--quick creates nothing)"
        elif env == "oban":
            base = find_python312(python312)
            error = (
                install_env(env, base)
                if base is not None and base.exists()
                else "no Python 3.12 found (pass --python312 PATH): oban needs Python >= 3.12"
            )
        else:
            error = install_env(env, Path(sys.executable))
        if error:
            log(f"environment {env}: {error}")
            missing.update({s: error for s in systems if SYSTEM_ENV[s] == env})
    return missing


# --- what the run records about itself ----------------------------------------------------


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"cpu_count": os.cpu_count(), "os": platform.platform()}
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        models = [
            line.split(":", 1)[1].strip()
            for line in cpuinfo.read_text().splitlines()
            if line.startswith("model name")
        ]
        info["cpu_model"] = models[0] if models else "?"
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["ram_gb"] = round(int(line.split()[1]) / 1024 / 1024, 1)
    return info


ENV_PROBE = """
import importlib.metadata as m, json, sys
versions = {}
for name in sys.argv[1:]:
    try:
        versions[name] = m.version(name)
    except m.PackageNotFoundError:
        versions[name] = None
print(json.dumps({"python": sys.version, "packages": versions}))
"""

SERVER_PROBE = """
import asyncio, sys, asyncpg
async def main():
    conn = await asyncpg.connect(sys.argv[1])
    try:
        print(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()
asyncio.run(main())
"""


def probe(python: Path, code: str, *args: str) -> str:
    done = subprocess.run(
        [str(python), "-c", code, *args], capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr else "failed")
    return done.stdout.strip()


def meta_line(kind: str, dsn: str, systems: list[str], skipped: dict[str, str]) -> dict[str, Any]:
    pythons, packages = {}, {}
    for env in sorted({SYSTEM_ENV[s] for s in systems} | {"main"}):
        if not env_python(env).exists():
            continue
        found = json.loads(probe(env_python(env), ENV_PROBE, *ENVS[env][1]))
        pythons[env] = found["python"]
        packages[env] = found["packages"]
    return {
        "measure": "meta",
        "run": kind,
        "command": shlex.join(["python", shown_path(sys.argv[0]), *sys.argv[1:]]),
        "cwd": str(Path.cwd()),
        "started_at": now(),
        "machine": machine(),
        "postgresql": probe(env_python("main"), SERVER_PROBE, dsn),
        "dsn": dsn,
        "systems": systems,
        "skipped": skipped,
        "pythons": pythons,
        "packages": packages,
        "git": git_state(),
    }


def git_state() -> str:
    """The commit curate was measured at, and whether the work tree differed from it."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "?"
    return f"{commit or '?'}{' with uncommitted changes' if changed else ''}"


def shown_path(argument: str) -> str:
    """A path under the repository as relative to it, as a reader would type it."""
    return os.path.relpath(argument, ROOT) if argument.startswith(f"{ROOT}/") else argument


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- running the steps --------------------------------------------------------------------


def json_object(line: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def tail(text: str, size: int = 600) -> str:
    return " ".join(text.strip().split())[-size:]


def stop(process: subprocess.Popen[str]) -> None:
    """Interrupt the runner's process group (its cleanup drops its schema), then kill it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # the runner and the workers it started
        process.wait()


Stream = Callable[[dict[str, Any]], None]


def execute(
    argv: list[str], timeout: float, stream: Stream | None = None, measure: str = ""
) -> tuple[dict[str, Any] | None, str]:
    """Run one step: (its JSON line, or None and why not).

    Its result is the last JSON line it prints; with ``stream``, lines of a measure other
    than ``measure`` go to ``stream`` as they are printed, and the result is the last of
    ``measure``."""
    found: list[dict[str, Any]] = []

    def take(value: dict[str, Any]) -> None:
        if stream is not None and value.get("measure") != measure:
            stream(value)
        else:
            found.append(value)

    error = execute_lines(argv, timeout, take)
    if error:
        return None, error
    return (found[-1], "") if found else (None, "exit 0 without a JSON line")


def execute_lines(argv: list[str], timeout: float, take: Stream) -> str:
    """Run one step in its own process group, handing each JSON line it prints to ``take``
    as it comes: "" once it exits 0, else why it failed. Its stderr goes to a file, so a
    long step cannot block on a full pipe."""
    with tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen(
            argv,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            start_new_session=True,
        )
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True).start()
        deadline = time.monotonic() + timeout
        timed_out = False
        while True:
            try:
                raw = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                stop(process)
                timed_out = True
                break
            if raw is None:
                break
            value = json_object(raw)
            if value is not None:
                take(value)
        process.wait()
        errors.seek(0)
        stderr = errors.read()
    if timed_out:
        return f"timeout after {timeout:.0f} s; stderr: {tail(stderr)}"
    if process.returncode != 0:
        return f"exit {process.returncode}; stderr: {tail(stderr)}"
    return ""


def _pump(source: Any, lines: queue.Queue[str | None]) -> None:
    """Hand the step's stdout over line by line; None at its end."""
    for line in source:
        lines.put(line)
    lines.put(None)


def run_step(
    step: Step, dsn: str, skipped: dict[str, str], deadline: float, stream: Stream | None = None
) -> list[dict[str, Any]]:
    """The step's result lines, tagged: one, or one per case of an own-server step (those
    it printed before it failed are kept); a line with "error" when it fails or cannot
    run, with "skipped" when this machine cannot run it.

    A step that would run past ``deadline`` is cut to it, or not run when under 10 s remain.
    A streaming step's other lines go to ``stream`` as they come (`execute`)."""
    started = time.monotonic()
    step = step.within(deadline - started)
    argv = step.argv(env_python(SYSTEM_ENV[step.system]), dsn)
    line: dict[str, Any] = {"system": step.system, "measure": step.measure, **step.tags}
    results: list[dict[str, Any]] = []
    if step.unmet:
        line["skipped"] = step.unmet
    elif step.system in skipped:
        line["error"] = f"not run: {skipped[step.system]}"
    elif not Path(argv[1]).is_file():
        line["error"] = f"not run: {shown_path(argv[1])} does not exist"
    elif step.timeout < 10:
        line["error"] = "not run: the run's time budget (--budget-minutes) is spent"
    elif step.own_server:
        error = execute_lines(argv, step.timeout, results.append)
        if error or not results:
            line["error"] = error or "exit 0 without a JSON line"
    else:
        result, error = execute(argv, step.timeout, stream if step.streams else None, step.measure)
        if result is None:
            line["error"] = error
        else:
            results.append(result)
    lines = [{**r, **step.tags, "measure": r.get("measure", step.measure)} for r in results]
    if "error" in line or "skipped" in line:
        lines.append(line)
    shown = [shown_path(a) for a in argv]
    elapsed = round(time.monotonic() - started, 2)
    return [{**x, "step": step.label, "argv": shown, "elapsed_s": elapsed} for x in lines]


def summary(line: dict[str, Any]) -> str:
    if "error" in line:
        return f"ERROR {tail(str(line['error']), 200)}"
    if "skipped" in line:
        return str(line["skipped"])
    measure = str(line.get("measure", ""))
    own = next((own for own in OWN_SERVER if measure.startswith(own.measure)), None)
    if own is not None:
        return own.says(line)
    if line.get("measure") == "soak":
        return (
            f"minute {line.get('minute')}: {line.get('items_per_s')} items/s, backlog"
            f" {line.get('queued_backlog')}, claim p99 {line.get('claim_p99_ms')} ms,"
            f" {(line.get('table_bytes', 0) + line.get('index_bytes', 0)) / 2**20:,.0f} MB"
        )
    if line.get("measure") == "soak_summary":
        verdicts = ", ".join(
            f"{name} {'met' if target.get('met') else 'NOT met'}"
            for name, target in line.get("targets", {}).items()
        )
        return f"{line.get('rate')} rows/s for {line.get('minutes')} min: {verdicts}"
    if line.get("measure") == "drain":
        done = " (timed out)" if line.get("timed_out") else ""
        return f"{line.get('per_second', 0):,.0f} items/s{done}, peak {line.get('peak_rss_mb')} MB"
    return f"p50 {line.get('p50_ms')} ms, p95 {line.get('p95_ms')} ms"


# Rough items/s for the estimate printed at the start (the figures, 2 vCPUs).
EXPECTED_RATE = {
    "per_item": 2_000,
    "batched": 10_000,
    "limit 10": 1_200,
    "procrastinate": 300,
    "naive": 10,
}


def estimate_seconds(step: Step) -> float:
    """What one step is expected to take; its timeout is the bound."""
    if step.unmet:
        return 0.0
    if step.expected is not None:
        return step.expected
    if step.measure == "pickup":
        return float(step.args[step.args.index("--seconds") + 1]) + 8
    if step.measure == "claim_cost":
        return 10 + 8e-6 * int(step.tags["rows"])
    if step.measure == "soak_summary":
        seconds = float(step.args[step.args.index("--minute-seconds") + 1])
        return 30 + int(step.tags["minutes"]) * seconds + 1.5e-4 * int(step.tags["rows"])
    n = int(step.tags["n"])
    rate = EXPECTED_RATE.get(step.tags["config"], EXPECTED_RATE.get(step.system, 2_000))
    cap = float(step.args[step.args.index("--max-seconds") + 1])
    return 5 + 5e-5 * n + min(cap, n / rate)


# --- the command --------------------------------------------------------------------------


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dsn", default=DEFAULT_DSN, help="PostgreSQL to run on (only used)")
    parser.add_argument("--quick", action="store_true", help="smoke run: curate and naive, tiny N")
    parser.add_argument("--only", help="these systems (comma-separated): " + ",".join(SYSTEMS))
    parser.add_argument("--skip-peers", action="store_true", help="curate and naive only")
    parser.add_argument(
        "--measures", help="these measures (comma-separated): " + ",".join(MEASURES)
    )
    parser.add_argument("--python312", help="Python 3.12 for bench/.venv-oban")
    parser.add_argument("--results-dir", type=Path, default=BENCH / "results")
    parser.add_argument("--docs-dir", type=Path, default=ROOT / "docs")
    parser.add_argument("--no-render", action="store_true", help="results file only")
    parser.add_argument("--budget-minutes", type=float, default=29, help="stop starting steps")
    parser.add_argument("--dry-run", action="store_true", help="print the steps, run nothing")
    parser.add_argument(
        "--soak",
        type=int,
        nargs="?",
        const=SOAK_MINUTES,
        metavar="MINUTES",
        help=f"then the soak of curate and PgQueuer (default {SOAK_MINUTES} minutes)",
    )
    parser.add_argument("--soak-rows", type=int, help="rows of the soak's table (1,000,000)")
    parser.add_argument("--soak-only", action="store_true", help="the soak, no other step")
    parser.add_argument(
        "--soak-server",
        choices=("own", "dsn"),
        default="own" if os.geteuid() == 0 else "dsn",
        help="the soak's PostgreSQL: a stock one of its own (bench/own_server.py, as root;"
        " the default then) or the one at --dsn",
    )
    args = parser.parse_args(argv)
    if (args.soak_rows or args.soak_only) and not args.soak:
        parser.error("--soak-rows and --soak-only go with --soak MINUTES")
    own = ["curate", "naive"]
    systems = own if args.quick else SYSTEMS
    if args.only:  # also with --quick: a peer at the tiny N, in its existing environment
        systems = chosen(parser, args.only, SYSTEMS, "systems")
    if args.skip_peers:
        systems = [s for s in systems if s in own]
    if args.soak_only:
        systems = [s for s in systems if s in SOAK_SYSTEMS]
    args.systems = systems
    args.measures = (
        chosen(parser, args.measures, MEASURES, "measures") if args.measures else MEASURES
    )
    return args


def chosen(parser: argparse.ArgumentParser, text: str, known: list[str], what: str) -> list[str]:
    """The names of a comma-separated option, in ``known``'s order; unknown ones stop it."""
    names = {name.strip() for name in text.split(",") if name.strip()}
    unknown = sorted(names - set(known))
    if unknown:
        parser.error(f"unknown {what} {unknown}; known: {known}")
    return [name for name in known if name in names]


def render(results: Path, docs_dir: Path) -> None:
    """bench/render.py in the environment that has matplotlib, else the Markdown only."""
    drawn = env_ready("peers")
    python, extra = (env_python("peers"), []) if drawn else (env_python("main"), ["--no-plot"])
    command = [str(python), str(BENCH / "render.py"), str(results), "--docs-dir", str(docs_dir)]
    done = subprocess.run([*command, *extra], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        log(f"render failed: {tail(done.stderr, 1000)}")
    else:
        log(f"wrote {done.stdout.strip()}")


def soak_plan(args: argparse.Namespace, sizes: Sizes, rate: Any = "RATE") -> list[Step]:
    """The soak's steps as planned; PgQueuer's ``rate`` is known once curate's has run."""
    if not args.soak:
        return []
    rows = args.soak_rows or sizes.soak_rows
    return [
        soak_step(sizes, system, args.soak, rows, None if system == "curate" else rate)
        for system in SOAK_SYSTEMS
        if system in args.systems
    ]


@contextlib.contextmanager
def soak_server(args: argparse.Namespace) -> Iterator[tuple[str, str]]:
    """The URL of the soak's server and "" (or "" and why there is none): a stock
    PostgreSQL started for it (bench/own_server.py, stopped on the way out) with
    ``--soak-server own``, else ``--dsn``."""
    if args.soak_server == "dsn":
        yield args.dsn, ""
        return
    command = [str(env_python("main")), str(BENCH / "own_server.py")]
    with (
        tempfile.TemporaryFile("w+") as errors,
        subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, text=True
        ) as server,
    ):
        assert server.stdin is not None and server.stdout is not None
        try:
            dsn = (json_object(server.stdout.readline()) or {}).get("dsn")
            if dsn is None:
                server.wait(timeout=60)
                errors.seek(0)
                yield "", f"the soak's own server did not start: {tail(errors.read())}"
                return
            log(f"soak server: a stock PostgreSQL of its own at {dsn}")
            yield dsn, ""
        finally:
            server.stdin.close()  # it stops the server and deletes its data
            server.wait(timeout=120)


def run_soak(
    args: argparse.Namespace, sizes: Sizes, skipped: dict[str, str], write: Stream
) -> None:
    """curate's soak, then PgQueuer's at the producer rate curate's ran at, on one server."""

    def stream(line: dict[str, Any]) -> None:
        write(line)
        log(f"    {summary(line)}")

    rate = None
    with soak_server(args) as (dsn, no_server):
        for planned in soak_plan(args, sizes):
            step = soak_step(sizes, planned.system, args.soak, int(planned.tags["rows"]), rate)
            if no_server:
                why = {**skipped, step.system: no_server}
            elif step.system == "curate" or rate is not None:
                why = skipped
            else:
                why = {**skipped, step.system: "curate's soak set no producer rate"}
            log(f"soak ({step.timeout / 60:.0f} min at most) {step.label}")
            for line in run_step(step, dsn, why, math.inf, stream):
                write({**line, "server": args.soak_server})
                log(f"    {summary(line)} [{line['elapsed_s']:.1f} s]")
                if step.system == "curate":
                    rate = line.get("rate")


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    sizes = QUICK if args.quick else FULL
    everything = args.systems == SYSTEMS and args.measures == MEASURES
    kind = "quick" if args.quick else ("full" if everything else "partial")
    kind = "soak" if args.soak_only else kind
    steps = plan(args, sizes, {})
    soaks = soak_plan(args, sizes)
    expected = sum(map(estimate_seconds, [*steps, *soaks])) / 60
    log(f"{kind} run on {args.dsn}: {len(steps) + len(soaks)} steps, expected ~{expected:.0f} min")
    if args.dry_run:
        for step in [*steps, *soaks]:
            print(shlex.join(step.argv(env_python(SYSTEM_ENV[step.system]), args.dsn)))
        return 0
    skipped = ensure_envs(args.systems, args.python312, create=not args.quick)
    if "curate" in skipped or not env_python("main").exists():
        log("the main environment is missing: run ./scripts/bootstrap")
        return 2
    steps = plan(args, sizes, skipped)  # again: a peer is measured beside curate if it can be
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    results = args.results_dir / f"{stamp}{'-quick' if args.quick else ''}.jsonl"
    begun = time.monotonic()
    deadline = begun + args.budget_minutes * 60
    try:
        meta = meta_line(kind, args.dsn, args.systems, skipped)
    except (RuntimeError, OSError, subprocess.SubprocessError) as error:
        log(f"cannot reach PostgreSQL at {args.dsn} or probe the environments: {error}")
        return 2
    with results.open("a") as out:

        def write(line: dict[str, Any]) -> None:
            out.write(json.dumps(line) + "\n")
            out.flush()

        write(meta)
        log(f"results: {results}")
        for number, step in enumerate(steps, 1):
            elapsed = (time.monotonic() - begun) / 60
            log(f"{number}/{len(steps)} ({elapsed:.1f} min) {step.label}")
            # What the steps after this one are expected to take stays theirs.
            reserved = sum(map(estimate_seconds, steps[number:]))
            for line in run_step(step, args.dsn, skipped, deadline - reserved):
                write(line)
                log(f"    {summary(line)} [{line['elapsed_s']:.1f} s]")
        run_soak(args, sizes, skipped, write)
        write({"measure": "end", "finished_at": now(), "seconds": round(time.monotonic() - begun)})
    log(f"done in {(time.monotonic() - begun) / 60:.1f} min")
    if not args.no_render:
        render(results, args.docs_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
