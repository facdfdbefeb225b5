"""bench/delay_relay.py, the netem stand-in of bench/latency.py, on real sockets of 127.0.0.1:
it passes bytes through unchanged and in order, delays each round trip by at least the set
amount, and lets chunks overlap in flight (a pipe with latency, not stop-and-wait)."""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

RELAY = Path(__file__).resolve().parents[1] / "bench" / "delay_relay.py"


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def start_relay(upstream: int, rtt_ms: float) -> tuple[asyncio.subprocess.Process, int]:
    """The relay as the benchmark runs it: its own process; its port, once it listens."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(RELAY),
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        f"127.0.0.1:{upstream}",
        "--rtt-ms",
        str(rtt_ms),
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 30)
    assert line.startswith(b"listening "), line
    return process, int(line.split()[1])


@pytest.fixture
async def relay(echo_port: int, request: pytest.FixtureRequest) -> AsyncIterator[int]:
    """The relay's port, in front of the echo server, with the test's ``rtt_ms``."""
    process, port = await start_relay(echo_port, request.param)
    try:
        yield port
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), 10) == 0


@pytest.mark.parametrize("relay", [0, 2], indirect=True)
async def test_bytes_pass_unchanged_and_in_order(relay: int) -> None:
    """4 MiB of random bytes in chunks of many sizes come back as they were sent."""
    sent = os.urandom(4 * 2**20)
    reader, writer = await asyncio.open_connection("127.0.0.1", relay)

    async def send() -> None:
        at, size = 0, 1
        while at < len(sent):
            writer.write(sent[at : at + size])
            await writer.drain()
            at, size = at + size, size * 3 % 70001 + 1

    sending = asyncio.create_task(send())
    received = await asyncio.wait_for(reader.readexactly(len(sent)), 60)
    await sending
    writer.close()
    assert received == sent


@pytest.mark.parametrize("relay", [20], indirect=True)
async def test_each_round_trip_is_delayed_by_the_set_amount(relay: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", relay)
    trips = []
    for _ in range(10):
        clock = time.perf_counter()
        writer.write(b"x")
        await reader.readexactly(1)
        trips.append((time.perf_counter() - clock) * 1000)
    writer.close()
    assert min(trips) >= 20, trips
    assert statistics.median(trips) < 60, trips  # 20 ms and the wake-ups, on a busy machine


@pytest.mark.parametrize("relay", [50], indirect=True)
async def test_chunks_in_flight_overlap(relay: int) -> None:
    """20 messages sent 5 ms apart all return within about one round trip of the last one
    sent: the relay holds them together, it does not wait for one to land to send the next."""
    reader, writer = await asyncio.open_connection("127.0.0.1", relay)
    clock = time.perf_counter()
    for index in range(20):
        writer.write(bytes([index]))
        await writer.drain()
        await asyncio.sleep(0.005)
    received = await asyncio.wait_for(reader.readexactly(20), 10)
    elapsed = (time.perf_counter() - clock) * 1000
    writer.close()
    assert received == bytes(range(20))
    assert 100 + 50 <= elapsed < 20 * 50, elapsed  # not 20 round trips of 50 ms one after another
