"""What the daemon and its clients listen on or write into: a port or folder that cannot be had is one line.

Every bind goes through here: /metrics of the daemon, the logger and the MQTT bridge, the web console's port,
the bus's tcp endpoints, the runtime folder and the output folders of ``log``, ``analyze`` and ``view``. A taken
port or an unwritable folder is a ``UsageError`` (one line on stderr, exit status 2) naming what wanted it,
where, why, and the flag or key that moves it, found before any process starts wherever it can be.
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path
from typing import Any

from emotiond.core.errors import UsageError


def bind_error(what: str, host: str, port: int, exc: OSError, change: str) -> UsageError:
    """The one line for a port that cannot be bound; ``change`` names the flag or key that picks another."""
    if exc.errno == errno.EADDRINUSE:
        why = "the port is already in use (another emotiond, or another program)"
    elif exc.errno == errno.EADDRNOTAVAIL:
        why = "that address is not on this machine"
    elif exc.errno == errno.EACCES:
        why = "permission denied (ports below 1024 need privileges)"
    else:
        why = exc.strerror or str(exc)
    return UsageError(f"cannot listen for {what} on {host}:{port}: {why}; choose another with {change}")


def check_port(what: str, host: str, port: int, change: str) -> None:
    """Refuse a port this process could not bind now (port 0, any free port, always can)."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind: TIME_WAIT is no owner
        try:
            probe.bind((host, port))
        except socket.gaierror as exc:  # a host name that does not resolve
            raise UsageError(f"cannot listen for {what} on {host}:{port}: {exc.strerror}; "
                             f"choose another with {change}") from None
        except OSError as exc:
            raise bind_error(what, host, port, exc, change) from None


def check_tcp_endpoint(what: str, endpoint: str, change: str) -> None:
    """A ZeroMQ ``tcp://HOST:PORT`` endpoint to bind (ipc and wildcard ports need no check)."""
    if not endpoint.startswith("tcp://"):
        return
    host, _, port = endpoint[len("tcp://"):].rpartition(":")
    if not port.isdigit():
        return
    host = host.strip("[]")
    check_port(what, "0.0.0.0" if host == "*" else host, int(port), change)


def serve_metrics(what: str, host: str, port: int, registry: Any, change: str) -> int:
    """prometheus_client's /metrics server, with a taken port as one line; returns the bound port."""
    from prometheus_client import start_http_server

    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise bind_error(what, host, port, exc, change) from None
    return server.server_port


def writable_folder(what: str, folder: Path, change: str, mode: int = 0o777, create: bool = True) -> Path:
    """Create ``folder`` (with ``mode``) if needed and check this process can write there; else one line.
    With ``create=False`` a missing folder is left for later, and only the nearest existing parent is checked."""
    if not create and not folder.exists():
        parent = next((p for p in folder.absolute().parents if p.exists()), Path("/"))
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise UsageError(f"cannot write {what} into {folder}: {parent} is not a folder this process can "
                             f"write; choose another with {change}")
        return folder
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=mode)
    except FileExistsError:
        raise UsageError(f"cannot write {what} into {folder}: it is a file, not a folder; "
                         f"choose another with {change}") from None
    except OSError as exc:
        raise UsageError(f"cannot write {what} into {folder}: {exc.strerror or exc}; "
                         f"choose another with {change}") from None
    if not folder.is_dir():
        raise UsageError(f"cannot write {what} into {folder}: it is not a folder; choose another with {change}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write {what} into {folder}: permission denied; choose another with {change}")
    return folder
