"""Hosts of our own on one LAN: a network namespace per host, each wired by a veth pair to a bridge inside a
switch namespace, so hosts reach each other directly and this machine's own network sees none of it.

    with lan(["daemon", "worker1", "subscriber"]) as hosts:
        hosts["daemon"].popen([...])              # runs inside the daemon host
        hosts["worker1"].address                  # 10.232.0.3, reachable from every other host
        hosts["worker1"].link_down()              # its switch port goes down: the host drops off the LAN
        hosts["worker1"].link_up()

Every host is a support.netns.NetNamespace (``popen``, ``run``, ``link_down``/``link_up``), with its switch port
as host_veth. The subnet exists only inside these namespaces, so parallel LANs never collide; names carry a
random suffix. On exit, even after a failure, the hosts' processes are killed and every namespace is deleted.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager

from support.netns import NetNamespace, ip

SUBNET = ipaddress.ip_network("10.232.0.0/24")  # addresses only inside the namespaces made here
BRIDGE = "br0"


@contextmanager
def lan(host_names: Sequence[str], prefix: str = "lan") -> Iterator[dict[str, NetNamespace]]:
    """One namespace per name, all on one bridge; the first host gets 10.232.0.2, the next .3, and so on."""
    suffix = secrets.token_hex(3)
    switch = f"{prefix}-{suffix}-sw"
    hosts: dict[str, NetNamespace] = {}
    with ExitStack() as cleanup:
        ip("netns", "add", switch)
        cleanup.callback(ip, "netns", "delete", switch, check=False)
        ip("-n", switch, "link", "add", BRIDGE, "type", "bridge")
        ip("-n", switch, "link", "set", BRIDGE, "up")
        for number, name in enumerate(host_names):
            host = NetNamespace(name=f"{prefix}-{suffix}-{number}", host_veth=f"vl{suffix}{number}s",
                                ns_veth=f"vl{suffix}{number}h", subnet=SUBNET, host_number=number + 2,
                                switch=switch)
            ip("netns", "add", host.name)
            cleanup.callback(host.close)
            ip("link", "add", host.host_veth, "type", "veth", "peer", "name", host.ns_veth)
            ip("link", "set", host.host_veth, "netns", switch)
            ip("link", "set", host.ns_veth, "netns", host.name)
            ip("-n", switch, "link", "set", host.host_veth, "master", BRIDGE)
            ip("-n", switch, "link", "set", host.host_veth, "up")
            ip("-n", host.name, "addr", "add", f"{host.address}/{SUBNET.prefixlen}", "dev", host.ns_veth)
            ip("-n", host.name, "link", "set", host.ns_veth, "up")
            ip("-n", host.name, "link", "set", "lo", "up")
            hosts[name] = host
        yield hosts
