"""Where a ZeroMQ endpoint listens: the one place that decides whether a tcp endpoint leaves this host."""

from __future__ import annotations

import ipaddress

_LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


def endpoint_host(endpoint: str) -> str | None:
    """The host part of a tcp endpoint (``tcp://HOST:PORT``, ``tcp://[v6]:PORT``), else None."""
    if not endpoint.startswith("tcp://"):
        return None
    address = endpoint[len("tcp://"):]
    if ";" in address:  # tcp://source;destination: the destination is what matters
        address = address.split(";", 1)[1]
    host = address.rsplit(":", 1)[0]
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def is_exposed(endpoint: str) -> bool:
    """True for a tcp endpoint that is not on the loopback interface (``*``, 0.0.0.0, a LAN address, a name)."""
    host = endpoint_host(endpoint)
    if host is None:
        return False
    if host.lower() in _LOOPBACK_NAMES:
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True  # '*', an interface name or a host name: reachable from elsewhere
