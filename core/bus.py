"""ZeroMQ sockets for every role, created one way: explicit LINGER, high-water marks, timeouts and
ZMQ_MAXMSGSIZE, one context per process.

Topology::

    capture ROUTER (frames)  <── DEALER workers ask for work (credits), get frames
    workers XPUB ──> proxy XSUB (results_in) ══ proxy XPUB (results) ──> SUB subscribers

Workers publish on XPUB sockets so they see which topics anyone subscribes to, and encode
``frame.<camera>`` only while a viewer wants it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from pathlib import Path

import zmq

from emotiond.core import security
from emotiond.core.settings import Settings

log = logging.getLogger(__name__)

RECEIVE_TIMEOUT_MS = 1000
SEND_TIMEOUT_MS = 1000


def context() -> zmq.Context:
    """The process-wide context (pyzmq's singleton; safe after spawn)."""
    return zmq.Context.instance()


def _configure(sock: zmq.Socket, settings: Settings, *, receives_untrusted: bool = True) -> zmq.Socket:
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, settings.bus.high_water_mark)
    sock.setsockopt(zmq.RCVHWM, settings.bus.high_water_mark)
    sock.setsockopt(zmq.RCVTIMEO, RECEIVE_TIMEOUT_MS)
    sock.setsockopt(zmq.SNDTIMEO, SEND_TIMEOUT_MS)
    if receives_untrusted:
        sock.setsockopt(zmq.MAXMSGSIZE, settings.bus.max_message_bytes)
    return sock


def prepare_ipc(endpoint: str) -> None:
    """Make the folder of an ipc endpoint, private to this user, and clear a stale socket file."""
    if not endpoint.startswith("ipc://"):
        return
    path = Path(endpoint[len("ipc://"):])
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.exists():
        path.unlink()


def remove_ipc(endpoints: Iterable[str]) -> None:
    for endpoint in endpoints:
        if endpoint.startswith("ipc://"):
            Path(endpoint[len("ipc://"):]).unlink(missing_ok=True)


def bind(sock: zmq.Socket, endpoint: str) -> None:
    prepare_ipc(endpoint)
    sock.bind(endpoint)
    if endpoint.startswith("ipc://"):
        os.chmod(endpoint[len("ipc://"):], 0o600)


def frames_router(settings: Settings, ctx: zmq.Context | None = None) -> zmq.Socket:
    """Capture side of the work queue. HANDOVER lets a restarted worker reclaim its identity."""
    ctx = ctx or context()
    sock = _configure(ctx.socket(zmq.ROUTER), settings)
    sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
    sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
    security.secure_server(sock, settings.endpoint("frames"), settings, ctx)
    bind(sock, settings.endpoint("frames"))
    return sock


def frames_dealer(settings: Settings, identity: str, ctx: zmq.Context | None = None) -> zmq.Socket:
    sock = _configure((ctx or context()).socket(zmq.DEALER), settings)
    sock.setsockopt(zmq.ROUTING_ID, identity.encode())
    security.secure_client(sock, settings.endpoint("frames"), settings)
    sock.connect(settings.endpoint("frames"))
    return sock


def results_publisher(settings: Settings, ctx: zmq.Context | None = None) -> zmq.Socket:
    """A publisher into the proxy. XPUB, so subscriptions are visible to the publisher."""
    sock = _configure((ctx or context()).socket(zmq.XPUB), settings)
    security.secure_client(sock, settings.endpoint("results_in"), settings)
    sock.connect(settings.endpoint("results_in"))
    return sock


def results_subscriber(endpoint: str, topics: Iterable[bytes], settings: Settings,
                       ctx: zmq.Context | None = None) -> zmq.Socket:
    sock = _configure((ctx or context()).socket(zmq.SUB), settings)
    for topic in topics:
        sock.setsockopt(zmq.SUBSCRIBE, topic)
    security.secure_client(sock, endpoint, settings)
    sock.connect(endpoint)
    return sock


class SubscriptionTracker:
    """Follows subscribe/unsubscribe notices arriving on an XPUB socket."""

    def __init__(self) -> None:
        self._counts: dict[bytes, int] = {}

    def feed(self, message: bytes) -> None:
        if not message:
            return
        topic = bytes(message[1:])
        if message[0] == 1:
            self._counts[topic] = self._counts.get(topic, 0) + 1
        elif message[0] == 0 and topic in self._counts:
            self._counts[topic] -= 1
            if self._counts[topic] <= 0:
                del self._counts[topic]

    def wanted(self, topic: bytes) -> bool:
        return any(topic.startswith(prefix) for prefix in self._counts)

    def drain(self, sock: zmq.Socket) -> None:
        while True:
            try:
                self.feed(sock.recv(zmq.NOBLOCK))
            except zmq.Again:
                return


class ResultsProxy:
    """XSUB/XPUB forwarder run in a thread so the owning process can stop it promptly."""

    def __init__(self, settings: Settings, ctx: zmq.Context | None = None):
        self._ctx = ctx or context()
        self._settings = settings
        self._control_endpoint = f"inproc://proxy-control-{id(self)}"
        self._thread: threading.Thread | None = None
        self._control: zmq.Socket | None = None

    def start(self) -> None:
        frontend = _configure(self._ctx.socket(zmq.XSUB), self._settings)
        backend = _configure(self._ctx.socket(zmq.XPUB), self._settings)
        # Subscribers may stall; the XPUB drops for them at the high-water mark instead of blocking.
        backend.setsockopt(zmq.SNDTIMEO, 0)
        security.secure_server(frontend, self._settings.endpoint("results_in"), self._settings, self._ctx)
        security.secure_server(backend, self._settings.endpoint("results"), self._settings, self._ctx)
        bind(frontend, self._settings.endpoint("results_in"))
        bind(backend, self._settings.endpoint("results"))
        control_server = self._ctx.socket(zmq.PAIR)
        control_server.setsockopt(zmq.LINGER, 0)
        control_server.bind(self._control_endpoint)
        self._control = self._ctx.socket(zmq.PAIR)
        self._control.setsockopt(zmq.LINGER, 0)
        self._control.connect(self._control_endpoint)

        def run() -> None:
            try:
                zmq.proxy_steerable(frontend, backend, None, control_server)
            except zmq.ContextTerminated:
                pass
            finally:
                for sock in (frontend, backend, control_server):
                    sock.close(linger=0)

        self._thread = threading.Thread(target=run, name="results-proxy", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._control is None or self._thread is None:
            return
        self._control.send(b"TERMINATE")
        self._thread.join(timeout=2.0)
        self._control.close(linger=0)
        self._control = None
