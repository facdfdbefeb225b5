"""Test hosts: network namespaces joined to this one by a veth pair, so that a process can
be cut off from a server by a real link going down (not a mocked driver error).

`network_host()` makes one host: a namespace ``curate-<random>``, a veth pair whose outer
end stays in this (the root) namespace, and a random ``10.x.y.0/30`` of its own: the
outer end gets the first address (a server of the test's own listens there), the host
the second. Run a process inside with ``host.command(...)`` (``ip netns exec``); cut the
link with `Host.cut` (the outer end down: what the host sends is dropped silently, as on
a pulled cable, and its TCP connections wait and retransmit) and bring it back with
`Host.restore`. Several hosts are several calls (a benchmark's ``ExitStack``). Everything
is deleted however the block ends. (No delay: this machine's kernel has no ``netem``
qdisc, ``tc qdisc add ... netem`` says "Specified qdisc kind is unknown".)

Only the addresses made here are used; a subnet some route of this machine already
covers is never chosen.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

IP = "ip"
ATTEMPTS = 20
"""Random subnets tried before giving up (all of them taken is next to impossible)."""


@dataclass(frozen=True)
class Host:
    """A namespace joined to the root namespace by a veth pair on a /30 of its own."""

    namespace: str
    outer_device: str
    """The veth end in the root namespace."""
    inner_device: str
    """The veth end inside the namespace."""
    network: ipaddress.IPv4Network

    @property
    def outer_address(self) -> str:
        """The root namespace's end of the link: where a server for the host listens."""
        return str(self.network[1])

    @property
    def address(self) -> str:
        """The host's own address, as servers see its connections come."""
        return str(self.network[2])

    @property
    def hba(self) -> str:
        """The ``pg_hba.conf`` line that lets the host's connections in (no password)."""
        return f"host all all {self.network} trust"

    def command(self, *argv: str) -> list[str]:
        """``argv`` run inside the namespace (``ip netns exec`` execs it: same process)."""
        return [IP, "netns", "exec", self.namespace, *argv]

    def cut(self) -> None:
        """Take the link down: nothing passes either way until `restore`."""
        _run(IP, "link", "set", self.outer_device, "down")

    def restore(self) -> None:
        """Bring the link back up (its addresses and routes come back with it)."""
        _run(IP, "link", "set", self.outer_device, "up")


def missing_netns() -> str | None:
    """Why test hosts cannot be made here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which(IP) is None:
        return "ip (iproute2) is missing: apt-get install iproute2"
    return None


@contextlib.contextmanager
def network_host() -> Iterator[Host]:
    """A fresh test host, deleted on the way out."""
    token = secrets.token_hex(3)
    host = Host(f"curate-{token}", f"cu{token}o", f"cu{token}i", _free_network())
    try:
        _run(IP, "netns", "add", host.namespace)
        veth = ("type", "veth", "peer", "name", host.inner_device)
        _run(IP, "link", "add", host.outer_device, *veth)
        _run(IP, "link", "set", host.inner_device, "netns", host.namespace)
        prefix = host.network.prefixlen
        _run(IP, "addr", "add", f"{host.outer_address}/{prefix}", "dev", host.outer_device)
        _run(IP, "link", "set", host.outer_device, "up")
        inside = (IP, "-n", host.namespace)
        _run(*inside, "addr", "add", f"{host.address}/{prefix}", "dev", host.inner_device)
        _run(*inside, "link", "set", host.inner_device, "up")
        _run(*inside, "link", "set", "lo", "up")
        yield host
    finally:
        # Deleting one end deletes the pair, even while a process keeps the namespace alive.
        _run(IP, "link", "del", host.outer_device, check=False)
        _run(IP, "netns", "del", host.namespace, check=False)


def _free_network() -> ipaddress.IPv4Network:
    """A random 10.x.y.z/30 that no route of this machine's root namespace covers."""
    routes = json.loads(_run(IP, "-j", "-4", "route", "show", "table", "all"))
    taken = [
        ipaddress.ip_network(route["dst"], strict=False)
        for route in routes
        if route.get("dst", "default") != "default"
    ]
    for _ in range(ATTEMPTS):
        network = ipaddress.IPv4Network((0x0A000000 | secrets.randbits(22) << 2, 30))
        if not any(network.overlaps(other) for other in taken):
            return network
    raise RuntimeError(f"no free 10.x.y.0/30 found in {ATTEMPTS} tries: {taken}")


def _run(*command: str, check: bool = True) -> str:
    """Run ``command``; its output, or an error that says what it printed."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stdout}{done.stderr}")
    return done.stdout
