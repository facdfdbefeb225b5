"""Drain and pick-up with the database a network round trip away (issue 16, "Real network latency").

    sudo .venv/bin/python bench/latency.py [--links direct,0,1,5] [--n 5000] [--repeat 3]
    sudo .venv/bin/python bench/latency.py --quick     # the smoke: 1 ms, tiny counts, ~30 s

As root (network namespaces). The workers run on a host of their own: a network namespace
joined to this one by a veth pair (`tests.netns`). The database is a PostgreSQL of this
script's own (`tests.dedicated_server`), listening on the root-side address of that link
and on 127.0.0.1. The issue asks for ``tc netem`` delay on the link; this kernel has no
netem (``tc qdisc add ... netem``: "Specified qdisc kind is unknown"), so the delay comes
from bench/delay_relay.py instead: a separate process on the root-side address that
forwards each connection to the server and holds every chunk for half the round trip each
way (see its docstring for what that means). Each link of ``--links`` is ``direct`` (the
veth, no relay) or a round trip in ms through the relay (``0``: the relay's own cost).

On each link: ``SELECT 1`` round trips timed from inside the namespace (the delay really
added, and the relay's overhead against ``direct``), then bench/run.py's own steps for
curate per item and batched and PgQueuer default and batch 100: each drain of ``--n``
items on one worker, then each pick-up at 50 jobs/s with LISTEN/NOTIFY (curate per item,
PgQueuer default and batch 100; curate's runner has no batched pick-up), every runner run
with ``ip netns exec`` so its parent, its producer and its workers all talk to the server
across the link. Their JSON lines come out as ``"measure": "net_latency"`` lines, with the
runner's ``measure`` as ``kind``, the link, and the CPU seconds of the step (this run's and
everything else's: another job on the shared cores explains a slow figure); the round
trips as ``net_latency_probe`` lines; at the end one ``net_latency_summary`` line with the
issue's two targets at 1 ms (bench/render_latency.py). ``--repeat`` rounds of all the
links, interleaved: other jobs on the shared cores come and go, and the targets take the
median of each round's ratio. Pick-up runs from the producer seeing its commit (half a
round trip after the server made it) to the service starting.
The server, the relay and the namespace are removed however the script ends.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
sys.path[:0] = [str(ROOT), str(BENCH), str(BENCH / "runners")]

import asyncpg  # noqa: E402
import cpu_time  # noqa: E402
import protocol  # noqa: E402
import psutil  # noqa: E402
import render_latency  # noqa: E402
import run as bench_run  # noqa: E402  (bench/run.py: its steps are the ones run here)
from tests.dedicated_server import DedicatedServer, dedicated_server  # noqa: E402
from tests.netns import Host, missing_netns, network_host  # noqa: E402

RELAY = BENCH / "delay_relay.py"
MEASURE = render_latency.MEASURE
PICKUP_CONFIG = {"curate": "per_item", "pgqueuer": "default"}
"""The configuration a runner's pick-up runs with by default (curate: one item at a time)."""
MAX_CONNECTIONS = 300
"""Batched curate's pool is 102 (concurrency + 2), besides the runner's own connections."""
PROBE_WARM_UP = 20
STOP_SECONDS = 10.0


@dataclass(frozen=True)
class Sizes:
    links: str
    n: int
    drain_cap: float
    pickup_seconds: float
    probe_count: int
    repeat: int
    """Rounds of all the links: other jobs on the shared cores come and go within minutes."""


FULL = Sizes("direct,0,1,5", 5_000, 120.0, 4.0, 500, 3)
QUICK = Sizes("1", 200, 30.0, 1.0, 50, 1)
"""The smoke run: one link, one round, 200 items, 50 pick-ups."""


@dataclass(frozen=True)
class Link:
    """The veth alone (``rtt_ms`` None), or the veth and the relay adding ``rtt_ms``."""

    rtt_ms: float | None

    @property
    def name(self) -> str:
        return "direct" if self.rtt_ms is None else "relay"

    @property
    def label(self) -> str:
        return "direct" if self.rtt_ms is None else f"relay {self.rtt_ms:g} ms"

    def fields(self) -> dict[str, Any]:
        return {"link": self.name, "rtt_ms": self.rtt_ms}


def parse_links(text: str) -> list[Link]:
    return [
        Link(None if word.strip() == "direct" else float(word))
        for word in text.split(",")
        if word.strip()
    ]


# -- the steps: bench/run.py's, on one worker ----------------------------------------------


def steps(sizes: Sizes, n: int, systems: list[str]) -> list[bench_run.Step]:
    """run.py's drains of curate (per item, batched) and PgQueuer (default, batch 100) at
    ``n`` on one worker; its pick-ups with NOTIFY, and PgQueuer's at batch 100 too: of the
    ``systems`` given."""
    planned = replace(
        bench_run.FULL,
        drain_n=(n,),
        workers=(1,),
        drain_cap={n: sizes.drain_cap},
        latency_seconds=sizes.pickup_seconds,
    )
    drains = list(bench_run.drain_steps(planned, systems))
    pickups = [
        replace(step, tags={"config": PICKUP_CONFIG[step.system], **step.tags})
        for step in bench_run.latency_steps(planned, systems)
        if step.tags["notify"] == "on"
    ]
    pickups += [
        replace(
            step,
            args=[*step.args, "--batch-size", "100"],
            tags={**step.tags, "config": "batch 100"},
        )
        for step in pickups
        if step.system == "pgqueuer"
    ]
    return [*drains, *pickups]


# -- the relay and the probe ---------------------------------------------------------------


@dataclass(frozen=True)
class Relay:
    process: subprocess.Popen[str]
    port: int


@contextlib.contextmanager
def relay(host: Host, server: DedicatedServer, rtt_ms: float) -> Iterator[Relay]:
    """bench/delay_relay.py on the link's root-side address, to the server on 127.0.0.1."""
    argv = [sys.executable, str(RELAY), "--listen", f"{host.outer_address}:0"]
    argv += ["--upstream", f"127.0.0.1:{server.port}", "--rtt-ms", f"{rtt_ms:g}"]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        words = process.stdout.readline().split()
        if words[:1] != ["listening"]:
            raise RuntimeError(f"the relay did not start: {process.wait(STOP_SECONDS)}")
        yield Relay(process, int(words[1]))
    finally:
        process.terminate()
        try:
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def probe_main(argv: Sequence[str]) -> None:
    """Inside the namespace: ``--count`` timed ``SELECT 1`` round trips; one JSON line."""
    parser = argparse.ArgumentParser(prog="latency.py probe")
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--count", type=int, required=True)
    args = parser.parse_args(argv)

    async def trips() -> list[float]:
        conn = await asyncpg.connect(args.dsn)
        try:
            millis = []
            for index in range(PROBE_WARM_UP + args.count):
                clock = time.perf_counter()
                await conn.fetchval("SELECT 1")
                if index >= PROBE_WARM_UP:
                    millis.append((time.perf_counter() - clock) * 1000)
            return sorted(millis)
        finally:
            await conn.close()

    millis = asyncio.run(trips())
    shares = {"min_ms": 0, "p50_ms": 50, "p95_ms": 95, "max_ms": 100}
    figures = {key: protocol.percentile(millis, share) for key, share in shares.items()}
    print(json.dumps({"count": len(millis), **figures}))


def probe(host: Host, dsn: str, count: int) -> dict[str, Any]:
    argv = host.command(sys.executable, __file__, "probe", "--dsn", dsn, "--count", str(count))
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=ROOT)
    if done.returncode != 0:
        return {"error": f"exit {done.returncode}: {bench_run.tail(done.stderr)}"}
    figures: dict[str, Any] = json.loads(done.stdout)
    return figures


# -- CPU -----------------------------------------------------------------------------------


class CpuMeter:
    """CPU seconds of one step: this run's (this script and its reaped children, i.e. the
    runner and its workers; the relay; the server, exited backends included) and what the
    rest of the machine used meanwhile (another job on the two shared cores)."""

    def __init__(self, server: DedicatedServer, relay_pid: int | None) -> None:
        self.data_dir = server.data_dir
        self.relay_pid = relay_pid
        self.clock = time.perf_counter()
        self.before = self._sample()

    def stop(self) -> dict[str, Any]:
        after = self._sample()
        mine, relay, server, machine = (a - b for a, b in zip(after, self.before, strict=True))
        ours = mine + relay + server
        return {
            "ours": round(ours, 2),
            "relay": round(relay, 2),
            "others": round(max(machine - ours, 0.0), 2),
            "seconds": round(time.perf_counter() - self.clock, 2),
            "cores": psutil.cpu_count(),
        }

    def _sample(self) -> tuple[float, float, float, float]:
        mine = cpu_time.own_seconds()
        relay = self._cpu(self.relay_pid) if self.relay_pid else 0.0
        server = cpu_time.server_seconds(self.data_dir)
        return mine, relay, server, cpu_time.machine_busy_seconds()

    @staticmethod
    def _cpu(pid: int) -> float:
        """A process's CPU seconds (0 once it has gone)."""
        try:
            t = psutil.Process(pid).cpu_times()
        except psutil.Error:
            return 0.0
        seconds: float = t.user + t.system
        return seconds


# -- the run -------------------------------------------------------------------------------


def emit(line: dict[str, Any]) -> None:
    print(json.dumps(line), flush=True)


def log(message: str) -> None:
    print(f"[latency {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_step(
    step: bench_run.Step,
    host: Host,
    server: DedicatedServer,
    dsn: str,
    link: Link,
    relay_pid: int | None,
) -> dict[str, Any]:
    """One runner inside the namespace, on ``dsn``: its JSON line as a ``net_latency`` line."""
    python = bench_run.env_python(bench_run.SYSTEM_ENV[step.system])
    argv = host.command(*step.argv(python, dsn))
    cpu = CpuMeter(server, relay_pid)
    result, error = bench_run.execute(argv, step.timeout)
    line: dict[str, Any] = {"measure": MEASURE, **link.fields(), "system": step.system}
    line["config"] = step.tags["config"]
    if result is None:
        line.update(kind=step.measure, error=error)
    else:
        line.update(kind=result.pop("measure", step.measure), **result)
    line.update(cpu_seconds=cpu.stop(), argv=[bench_run.shown_path(a) for a in argv])
    return line


def summary(line: dict[str, Any]) -> str:
    if "error" in line:
        return f"ERROR {bench_run.tail(str(line['error']), 300)}"
    if line["kind"] == "drain":
        return f"{line['per_second']:,.0f} items/s"
    return f"p50 {line['p50_ms']} ms, p95 {line['p95_ms']} ms ({line['count']}/{line['enqueued']})"


def measure_link(
    link: Link, host: Host, server: DedicatedServer, args: argparse.Namespace, round_: int
) -> list[dict[str, Any]]:
    """Probe and every step on one link; the lines, as they were printed."""
    lines = []
    with contextlib.ExitStack() as stack:
        target = replace(server, host=host.outer_address)
        relay_pid = None
        if link.rtt_ms is not None:
            started = stack.enter_context(relay(host, server, link.rtt_ms))
            target, relay_pid = replace(target, port=started.port), started.process.pid
        dsn = target.url()
        found = probe(host, dsn, args.sizes.probe_count)
        probed = {"measure": render_latency.PROBE, **link.fields(), **found, "round": round_}
        emit(probed)
        lines.append(probed)
        log(f"{link.label}: SELECT 1 p50 {found.get('p50_ms')} ms, p95 {found.get('p95_ms')} ms")
        for step in steps(args.sizes, args.n, args.systems):
            line = {**run_step(step, host, server, dsn, link, relay_pid), "round": round_}
            emit(line)
            lines.append(line)
            log(f"  {step.measure} {step.system} {step.tags['config']}: {summary(line)}")
    return lines


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke: 1 ms only, tiny counts")
    parser.add_argument("--links", help=f"direct and/or RTTs in ms (default {FULL.links})")
    parser.add_argument("--n", type=int, help=f"items per drain (default {FULL.n:,})")
    parser.add_argument("--repeat", type=int, help=f"rounds of all the links ({FULL.repeat})")
    parser.add_argument(
        "--pgqueuer-python",
        type=Path,
        help="also measure PgQueuer (its runner runs in bench/run.py's environment for it;"
        " this is that environment's Python, as bench/run.py passes it)",
    )
    args = parser.parse_args(argv)
    args.systems = ["curate", *(["pgqueuer"] if args.pgqueuer_python else [])]
    args.sizes = QUICK if args.quick else FULL
    args.links = parse_links(args.links or args.sizes.links)
    args.n = args.n or args.sizes.n
    args.repeat = args.repeat or args.sizes.repeat
    return args


def main(argv: Sequence[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["probe"]:
        probe_main(argv[1:])
        return
    args = parse(argv)
    missing = missing_netns()
    if missing is not None:
        raise SystemExit(f"latency.py runs as root with network namespaces: {missing}")
    for system in args.systems:
        python = bench_run.env_python(bench_run.SYSTEM_ENV[system])
        if not python.exists():
            raise SystemExit(f"latency.py needs {python} for {system}: run bench/run.py first")
    # SIGTERM unwinds like Ctrl-C: runners, relay, server and namespace removed.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    begun = time.monotonic()
    lines: list[dict[str, Any]] = []
    try:
        with contextlib.ExitStack() as stack:
            host = stack.enter_context(network_host())
            server = stack.enter_context(
                dedicated_server(
                    conf=[f"max_connections = {MAX_CONNECTIONS}"],
                    hba=["local all all trust", "host all all 127.0.0.1/32 trust", host.hba],
                    listen=[host.outer_address, "127.0.0.1"],
                )
            )
            stack.callback(stop_namespace_processes, host)  # first out: before server and relay
            for round_ in range(1, args.repeat + 1):
                for link in args.links:
                    lines += measure_link(link, host, server, args, round_)
    except KeyboardInterrupt:
        raise SystemExit(
            "latency.py: interrupted; runners, relay, server and namespace removed"
        ) from None
    found = render_latency.targets(lines)
    emit(
        {
            "measure": render_latency.SUMMARY,
            "links": [link.fields() for link in args.links],
            "n": args.n,
            "rounds": args.repeat,
            "relay": render_latency.relay_figures(lines),
            "targets": found,
            "seconds": round(time.monotonic() - begun),
        }
    )
    for name, target in found.items():
        log(f"target {name}: {target}")


def stop_namespace_processes(host: Host) -> None:
    """What still runs in the namespace (a runner this script was interrupted in): SIGINT,
    so it stops its workers, then SIGKILL after a grace period."""
    listed = subprocess.run(
        ["ip", "netns", "pids", host.namespace], capture_output=True, text=True, timeout=30
    ).stdout.split()
    running = []
    for pid in listed:
        with contextlib.suppress(psutil.Error):
            running.append(psutil.Process(int(pid)))
    for process in running:
        with contextlib.suppress(psutil.Error):
            process.send_signal(signal.SIGINT)
    _, alive = psutil.wait_procs(running, timeout=STOP_SECONDS)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=STOP_SECONDS)


if __name__ == "__main__":
    main()
