"""A TCP relay that adds a fixed delay each way: the stand-in for ``tc netem`` on this machine.

    python bench/delay_relay.py --listen 10.1.2.1:0 --upstream 127.0.0.1:5433 --rtt-ms 1

This kernel has no netem qdisc (CONFIG_NET_SCH_NETEM is not set: ``tc qdisc add ... netem``
says "Specified qdisc kind is unknown", and no module can be loaded), so bench/latency.py
delays the database's traffic here, in userspace. The relay listens on ``--listen`` (port 0:
any free one), prints ``listening <port>`` on stdout once it does, and forwards each
connection it accepts to ``--upstream``. Every chunk read on either side is held for half
of ``--rtt-ms`` after it arrived, then written to the other side: each direction is a FIFO
keyed by arrival time, so order is kept and chunks in flight overlap (a pipe with latency,
not stop-and-wait). The source is paused while its destination cannot keep up or while 16
MiB wait in its queue. SIGTERM or SIGINT stops it.

What this means for the figures: the delay is per chunk the relay reads, not per packet,
and the TCP handshake is not delayed (pools connect before a measure starts). It is at
least the set amount, plus the event loop's wake-up (select(), as epoll rounds its
timeouts up to whole milliseconds; a timer slack of 1 µs) and scheduling on a busy
machine. And the relay is one more Python process on the cores the workers and the server
use, so it costs CPU that a real network would not. bench/latency.py measures its overhead
(SELECT 1 direct and through the relay at delay 0) and the delay it adds. Standard
library only; select() limits it to file descriptors below 1024 (some 500 connections).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import ctypes
import selectors
import signal
import sys
from typing import Final

QUEUE_LIMIT = 16 * 2**20
"""Bytes held in one direction before the relay stops reading its source."""
PR_SET_TIMERSLACK = 29
TIMER_SLACK_NS = 1_000
"""Linux lets a timer fire up to 50 µs late by default; the relay asks for 1 µs."""


class _Close:
    """The end of a direction: the source closed (or sent EOF), so close the sink."""


CLOSE: Final = _Close()


class Pipe:
    """One direction of a relayed connection: chunks from ``source`` written to ``sink``
    ``delay`` seconds after they arrived, in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop, delay: float) -> None:
        self.loop = loop
        self.delay = delay
        self.source: asyncio.Transport | None = None
        self.sink: asyncio.Transport | None = None
        self.queue: collections.deque[tuple[float, bytes | _Close]] = collections.deque()
        self.queued = 0
        self.timer: asyncio.TimerHandle | None = None
        self.sink_full = False
        self.source_paused = False

    def push(self, chunk: bytes | _Close) -> None:
        """A chunk read from the source (or its end), due ``delay`` from now."""
        if not self.delay and not self.queue:
            self._deliver([chunk])
            return
        due = self.loop.time() + self.delay
        self.queue.append((due, chunk))
        if isinstance(chunk, bytes):
            self.queued += len(chunk)
            self.throttle()
        if self.timer is None:
            self.timer = self.loop.call_at(due, self.flush)

    def flush(self) -> None:
        """Write every chunk that is due, and wake up again for the next one."""
        self.timer = None
        now = self.loop.time()
        due: list[bytes | _Close] = []
        while self.queue and self.queue[0][0] <= now:
            chunk = self.queue.popleft()[1]
            if isinstance(chunk, bytes):
                self.queued -= len(chunk)
            due.append(chunk)
        self._deliver(due)
        if self.queue:
            self.timer = self.loop.call_at(self.queue[0][0], self.flush)
        self.throttle()

    def _deliver(self, chunks: list[bytes | _Close]) -> None:
        sink = self.sink
        if sink is None or sink.is_closing():
            return  # that side has gone: what was on its way to it is dropped
        ends = bool(chunks) and chunks[-1] is CLOSE  # nothing comes after a CLOSE
        data = [chunk for chunk in chunks if isinstance(chunk, bytes)]
        if data:
            sink.write(data[0] if len(data) == 1 else b"".join(data))
        if ends:
            sink.close()  # after what is buffered has been written

    def throttle(self) -> None:
        """Pause the source while the sink cannot keep up or too much waits; resume after."""
        pause = self.sink_full or self.queued > QUEUE_LIMIT
        source = self.source
        if pause == self.source_paused or source is None or source.is_closing():
            return
        self.source_paused = pause
        if pause:
            source.pause_reading()
        else:
            source.resume_reading()

    def stop(self) -> None:
        """The sink has gone: nothing more to write."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.queue.clear()
        self.queued = 0


class Endpoint(asyncio.Protocol):
    """One socket of a relayed connection: what it reads goes into ``outgoing``; it is the
    sink of ``incoming``."""

    def __init__(self, outgoing: Pipe, incoming: Pipe) -> None:
        self.outgoing = outgoing
        self.incoming = incoming
        self.ended = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.outgoing.source = transport
        self.incoming.sink = transport

    def data_received(self, data: bytes) -> None:
        self.outgoing.push(data)

    def eof_received(self) -> bool:
        """No half-close (PostgreSQL's protocol has none): EOF ends the connection."""
        self._end()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._end()
        self.incoming.stop()

    def pause_writing(self) -> None:
        self.incoming.sink_full = True
        self.incoming.throttle()

    def resume_writing(self) -> None:
        self.incoming.sink_full = False
        self.incoming.throttle()

    def _end(self) -> None:
        if not self.ended:
            self.ended = True
            self.outgoing.push(CLOSE)


class Client(Endpoint):
    """An accepted connection: not read until its upstream connection is made."""

    def __init__(self, upstream: tuple[str, int], delay: float) -> None:
        loop = asyncio.get_running_loop()
        super().__init__(Pipe(loop, delay), Pipe(loop, delay))
        self.upstream = upstream

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert isinstance(transport, asyncio.Transport)
        transport.pause_reading()
        task = asyncio.get_running_loop().create_task(self._connect(transport))
        _pending.add(task)
        task.add_done_callback(_pending.discard)

    async def _connect(self, transport: asyncio.Transport) -> None:
        host, port = self.upstream
        loop = asyncio.get_running_loop()
        try:
            made, _ = await loop.create_connection(
                lambda: Endpoint(self.incoming, self.outgoing), host, port
            )
        except OSError as error:
            print(f"delay_relay: cannot reach {host}:{port}: {error}", file=sys.stderr)
            transport.close()
            return
        if transport.is_closing():  # the client left while this connection was made
            made.close()
        else:
            transport.resume_reading()


_pending: set[asyncio.Task[None]] = set()
"""Upstream connections being made (the loop keeps only weak references to tasks)."""


def address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


async def serve(listen: tuple[str, int], upstream: tuple[str, int], delay: float) -> None:
    """Relay until SIGTERM or SIGINT; say the port once listening."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Client(upstream, delay), *listen, backlog=512)
    port = server.sockets[0].getsockname()[1]
    print(f"listening {port}", flush=True)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", type=address, required=True, help="HOST:PORT (0: any)")
    parser.add_argument("--upstream", type=address, required=True, help="HOST:PORT")
    parser.add_argument("--rtt-ms", type=float, required=True, help="round trip added, ms")
    args = parser.parse_args()
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(PR_SET_TIMERSLACK, TIMER_SLACK_NS, 0, 0, 0)
    # select(): microsecond timeouts; epoll's are rounded up to whole milliseconds.
    loop = asyncio.SelectorEventLoop(selectors.SelectSelector())
    try:
        loop.run_until_complete(serve(args.listen, args.upstream, args.rtt_ms / 2000))
    finally:
        loop.close()


if __name__ == "__main__":
    main()
