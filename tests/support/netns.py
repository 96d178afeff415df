"""A network namespace joined to this host by a veth pair: a test host of our own, with a link we can cut.

    with network_namespace() as ns:
        server = ns.popen(["some-server", "--bind", ns.address])   # runs inside the namespace
        ...connect to ns.address from the host...
        ns.link_down()   # the host side of the veth goes down: packets stop, connections stall
        ns.link_up()

Each namespace gets a 10.231.X.0/30 that no interface or route here uses (10.231.X.1 on the host side,
10.231.X.2 inside) and names with a random suffix, so tests in parallel do not collide. On exit, even after a
failure, the processes started with ``popen`` are killed and the namespace and both veth ends are deleted.
Needs root (CAP_NET_ADMIN) and ``ip`` from iproute2.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import secrets
import shutil
import signal
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

SUBNET_POOL = ipaddress.ip_network("10.231.0.0/16")
LOCK = Path("/run/lock/emotiond-test-netns.lock")  # serialises picking a subnet and taking it


def ip_command() -> str:
    found = shutil.which("ip") or next((p for p in ("/usr/sbin/ip", "/sbin/ip", "/bin/ip") if os.path.exists(p)),
                                       None)
    if found is None:
        raise RuntimeError("`ip` is missing: install the Debian package iproute2")
    return found


def ip(*args: str, check: bool = True, timeout: float = 10) -> subprocess.CompletedProcess:
    done = subprocess.run([ip_command(), *args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


def networks_in_use() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network on an interface or a route of this (root) namespace."""
    used = []
    for entry in json.loads(ip("-j", "-4", "addr", "show").stdout or "[]"):
        for info in entry.get("addr_info", []):
            used.append(ipaddress.ip_interface(f"{info['local']}/{info['prefixlen']}").network)
    for route in json.loads(ip("-j", "-4", "route", "show", "table", "all").stdout or "[]"):
        destination = route.get("dst", "default")
        if destination != "default":
            with suppress(ValueError):
                used.append(ipaddress.ip_network(destination, strict=False))
    return used


def free_subnet() -> ipaddress.IPv4Network:
    """A random 10.231.X.0/30 that overlaps nothing in use here."""
    used = [net for net in networks_in_use() if net.overlaps(SUBNET_POOL)]
    candidates = [ipaddress.ip_network(f"10.231.{third}.0/30") for third in range(256)]
    free = [subnet for subnet in candidates if not any(subnet.overlaps(net) for net in used)]
    if not free:
        raise RuntimeError(f"no free 10.231.X.0/30 left: {len(used)} networks in {SUBNET_POOL} in use")
    return free[secrets.randbelow(len(free))]


@dataclass
class NetNamespace:
    name: str
    host_veth: str  # the end in the root namespace: link_down/link_up act on it
    ns_veth: str  # the end inside the namespace
    subnet: ipaddress.IPv4Network
    processes: list[subprocess.Popen] = field(default_factory=list)
    host_number: int = 2  # the namespace's address within the subnet (a LAN gives each host its own)
    switch: str | None = None  # the namespace holding host_veth, when it is a LAN's switch (support/lan.py)

    @property
    def host_address(self) -> str:
        """This host's address on the link (10.231.X.1)."""
        return str(self.subnet.network_address + 1)

    @property
    def address(self) -> str:
        """The namespace's address (10.231.X.2): where a server inside it is reached from the host."""
        return str(self.subnet.network_address + self.host_number)

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` as a command that runs inside the namespace."""
        return [ip_command(), "netns", "exec", self.name, *argv]

    def run(self, argv: Sequence[str], **kwargs) -> subprocess.CompletedProcess:
        """subprocess.run inside the namespace (give a ``timeout``)."""
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        return subprocess.run(self.command(argv), **kwargs)

    def popen(self, argv: Sequence[str], **kwargs) -> subprocess.Popen:
        """subprocess.Popen inside the namespace, in a process group of its own; killed on exit at the latest.

        ``ip netns exec`` execs the command, so the Popen's pid is the command's own."""
        kwargs.setdefault("start_new_session", True)
        process = subprocess.Popen(self.command(argv), **kwargs)
        self.processes.append(process)
        return process

    def link_down(self) -> None:
        """Takes the host end of the veth down: the route to the namespace goes, nothing passes either way."""
        ip(*self._host_side(), "link", "set", self.host_veth, "down")

    def link_up(self) -> None:
        ip(*self._host_side(), "link", "set", self.host_veth, "up")

    def _host_side(self) -> tuple[str, ...]:
        """``ip`` options that reach host_veth: in this namespace, or in the switch's."""
        return ("-n", self.switch) if self.switch else ()

    @property
    def link_is_up(self) -> bool:
        shown = json.loads(ip(*self._host_side(), "-j", "link", "show", self.host_veth).stdout)
        return "UP" in shown[0].get("flags", [])

    def close(self) -> None:
        """Kills what ``popen`` started, then deletes the namespace and the veth pair. Safe to call twice."""
        for process in self.processes:
            if process.poll() is None:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                with suppress(subprocess.TimeoutExpired):
                    process.wait(10)
        # Any process left in the namespace (started with `command`/`run` and not reaped) is killed too, since
        # a namespace with a process in it outlives `ip netns delete`.
        pids = ip("netns", "pids", self.name, check=False).stdout.split()
        for pid in pids:
            with suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        ip(*self._host_side(), "link", "del", self.host_veth, check=False)  # takes its peer with it
        ip("netns", "delete", self.name, check=False)


@contextmanager
def network_namespace(prefix: str = "emo") -> Iterator[NetNamespace]:
    """A fresh namespace with a veth link to this host; everything is deleted on exit, even after a failure."""
    suffix = secrets.token_hex(3)
    ns = NetNamespace(name=f"{prefix}-{suffix}", host_veth=f"ve{suffix}h", ns_veth=f"ve{suffix}n",
                      subnet=ipaddress.ip_network("0.0.0.0/30"))
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    try:
        with LOCK.open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            ns.subnet = free_subnet()
            ip("netns", "add", ns.name)
            ip("link", "add", ns.host_veth, "type", "veth", "peer", "name", ns.ns_veth)
            ip("addr", "add", f"{ns.host_address}/30", "dev", ns.host_veth)
        ip("link", "set", ns.ns_veth, "netns", ns.name)
        ip("link", "set", ns.host_veth, "up")
        ip("-n", ns.name, "addr", "add", f"{ns.address}/30", "dev", ns.ns_veth)
        ip("-n", ns.name, "link", "set", ns.ns_veth, "up")
        ip("-n", ns.name, "link", "set", "lo", "up")
        yield ns
    finally:
        ns.close()
