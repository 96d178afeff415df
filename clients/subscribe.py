"""Reading the daemon's results bus: the one receive loop every subscriber uses.

    import emotiond
    for result in emotiond.subscribe(cameras=["cam0"], timeout=10):
        print(result.camera, result.seq, [f.emotion for f in result.faces])

``Subscription`` owns one SUB socket on the results endpoint. It subscribes to the topics of the chosen
message kinds (``result``, ``status``, ``frame``) and cameras, decodes and validates every message, drops the
ones of other cameras (a topic prefix also matches longer camera names) and counts malformed ones by reason.
After ``REBUILD_AFTER_SECONDS`` without a message (once it has heard one) it rebuilds its socket, so a daemon that
restarted is found again.
``emotiond events``, the viewer, the logger, the web console, the MQTT bridge and the tests all read through it.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType

import zmq

from emotiond.clients.gaps import NOT_PUBLISHED, Gap, GapWatch
from emotiond.core import bus, protocol
from emotiond.core.settings import Settings

log = logging.getLogger(__name__)
KIND_PREFIXES = {"result": protocol.RESULT_PREFIX, "status": protocol.STATUS_PREFIX, "frame": protocol.FRAME_PREFIX,
                 "tracks": protocol.TRACKS_PREFIX, "aggregate": protocol.AGGREGATE_PREFIX,
                 "*": b""}  # "*": every topic, so the decoder judges (and counts) whatever a publisher sends
MAX_MESSAGES_PER_RECEIVE = 256  # bounds one drain, so a backlog cannot starve the caller's other work
# Silence after which the SUB socket is rebuilt. ZeroMQ reconnects a socket by itself, but only to the peer it
# knew: a daemon restarted while the old one still holds the connection (hung, or across a half-open tcp link),
# bound again on a new ipc inode, or behind a host name that now resolves elsewhere, is reached only by
# connecting anew. A running daemon publishes a result for every frame it processes, so seconds of silence
# mostly mean it is gone or restarting. 5 s is longer than the gaps of a working live camera and shorter than a
# daemon restart (its workers load a model), and a needless rebuild costs only one reconnect.
REBUILD_AFTER_SECONDS = 5.0


def message_camera(message: protocol.Message) -> str:
    return message.header.camera if isinstance(message, protocol.Frame) else message.camera


class Subscription:
    def __init__(self, endpoint: str | None = None, cameras: Iterable[str] = (), *,
                 kinds: Iterable[str] = ("result",), settings: Settings | None = None,
                 ctx: zmq.Context | None = None, on_bad: Callable[[protocol.ProtocolError], None] | None = None,
                 rebuild_after: float | None = REBUILD_AFTER_SECONDS):
        self.settings = settings or Settings()
        self.endpoint = endpoint or self.settings.endpoint("results")
        self.kinds = tuple(kinds)
        unknown = set(self.kinds) - KIND_PREFIXES.keys()
        if unknown:
            raise ValueError(f"unknown message kinds {sorted(unknown)}; known: {sorted(KIND_PREFIXES)}")
        self.cameras = tuple(cameras)
        self.bad_messages: collections.Counter[str] = collections.Counter()
        self.last_message_at = time.monotonic()
        self.rebuild_after = rebuild_after  # None: never rebuild
        self.rebuilds = 0
        self.drain_started = self.last_message_at  # when the latest receive began reading
        self.last_full_drain: float | None = None  # when the latest receive that found the queue full began
        self._heard = False  # a message arrived on this subscription (rebuilds keep it)
        self._connected_at = self.last_message_at
        self._ctx = ctx
        self._on_bad = on_bad
        self._sock: zmq.Socket | None = None
        self.connect()

    def topics(self) -> list[bytes]:
        names = [c.encode() for c in self.cameras] or [b""]
        return [KIND_PREFIXES[kind] + name for kind in self.kinds for name in names]

    def connect(self) -> None:
        """(Re)build the socket: also recovers from a daemon that came back on a new ipc inode or host."""
        self.close()
        self._sock = bus.results_subscriber(self.endpoint, self.topics(), self.settings, ctx=self._ctx)
        self._connected_at = time.monotonic()

    def set_cameras(self, cameras: Iterable[str]) -> None:
        """Change cameras on the live socket (a viewer narrowing to one camera stops frames of the others)."""
        assert self._sock is not None
        old, self.cameras = self.topics(), tuple(cameras)
        for topic in self.topics():
            self._sock.setsockopt(zmq.SUBSCRIBE, topic)
        for topic in old:
            if topic not in self.topics():
                self._sock.setsockopt(zmq.UNSUBSCRIBE, topic)

    def silent_for(self) -> float:
        """Seconds since the last message (or since the subscription was made), across rebuilds."""
        return time.monotonic() - self.last_message_at

    def _rebuild_if_silent(self) -> None:
        # Only a bus that spoke and went quiet is rebuilt: before the first message the daemon may still be loading
        # its models, and a rebuild then would open a window in which a short file's results are missed.
        if self.rebuild_after is None or self._sock is None or not self._heard:
            return
        quiet = time.monotonic() - max(self.last_message_at, self._connected_at)
        if quiet > self.rebuild_after and not self._sock.poll(0):  # messages waiting: the caller was away, not the bus
            log.debug("no message from %s for %.1f s: rebuilding the subscription", self.endpoint, quiet)
            self.rebuilds += 1
            self.connect()

    def receive(self, timeout_ms: int, max_messages: int = MAX_MESSAGES_PER_RECEIVE) -> list[protocol.Message]:
        """The messages waiting now, after up to ``timeout_ms`` for the first one; valid and wanted only."""
        self._rebuild_if_silent()
        assert self._sock is not None
        messages: list[protocol.Message] = []
        if not self._sock.poll(max(0, timeout_ms)):
            return messages
        self.drain_started = time.monotonic()
        drained = 0
        while len(messages) < max_messages:
            try:
                parts = self._sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            drained += 1
            self.last_message_at = time.monotonic()
            self._heard = True
            try:
                message = protocol.decode(parts, self.settings.bus.max_frame_pixels)
            except protocol.ProtocolError as exc:
                self.bad_messages[exc.reason] += 1
                log.warning("skipping malformed message: %s", exc)
                if self._on_bad is not None:
                    self._on_bad(exc)
                continue
            if self.cameras and message_camera(message) not in self.cameras:
                continue
            messages.append(message)
        if drained >= min(self.settings.bus.high_water_mark, max_messages):
            self.last_full_drain = self.drain_started  # a queue this long is likely to have overflowed
        return messages

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


def subscribe(endpoint: str | None = None, cameras: Iterable[str] | None = None, *,
              settings: Settings | None = None, include_status: bool = False, include_tracks: bool = False,
              include_gaps: bool = False, timeout: float | None = None, idle_timeout: float | None = None,
              on_wait: Callable[[Subscription], None] | None = None, include_aggregates: bool = False,
              ) -> Iterator[protocol.Result | protocol.Status | protocol.TracksEnded | protocol.Aggregate | Gap]:
    """Yield results (and status events, tracks ended when a camera stops, if asked) as they are published.

    No result is missed silently: every gap in a camera's seq numbers (also at its end of stream) is yielded as a
    ``Gap`` with ``include_gaps`` (``camera``, ``first_seq``, ``last_seq``, ``missed``, ``cause``: ``reader_slow``
    when this loop did not keep up and the bus dropped results for it), else logged.
    ``timeout`` bounds the whole iteration; ``idle_timeout`` ends it after that long without a message.
    ``on_wait`` is called with the subscription before each wait (at least once a second), so a caller can
    notice silence. Malformed messages are logged and skipped. ``include_aggregates`` adds the windows a daemon in
    aggregates-only mode publishes instead of results.
    """
    kinds = ("result", "status", "tracks") if include_tracks else ("result", "status")
    kinds += ("aggregate",) if include_aggregates else ()
    deadline = time.monotonic() + timeout if timeout else None
    watch = GapWatch()
    with Subscription(endpoint, cameras or (), kinds=kinds, settings=settings) as subscription:
        while True:
            now = time.monotonic()
            if (deadline is not None and now >= deadline) or (
                    idle_timeout is not None and subscription.silent_for() >= idle_timeout):
                yield from _gap_items(watch.close(), include_gaps)  # nothing more comes: open holes are final
                return
            if on_wait is not None:
                on_wait(subscription)
            wait = 1.0 if deadline is None else min(1.0, deadline - now)
            for message in subscription.receive(max(1, int(wait * 1000))):
                gaps = watch.see(message, subscription.drain_started, subscription.last_full_drain)
                yield from _gap_items(gaps, include_gaps)
                if isinstance(message, protocol.Result | protocol.TracksEnded | protocol.Aggregate) or (
                        include_status and isinstance(message, protocol.Status)):
                    yield message
            yield from _gap_items(watch.expire(), include_gaps)


def _gap_items(gaps: list[Gap], include: bool) -> Iterator[Gap]:
    """Gaps as items, or as log lines: a warning for results this loop lost; info for results the daemon never
    published (a live camera's stale frames, dropped and counted by design, can make several a second)."""
    for gap in gaps:
        if include:
            yield gap
        else:
            log.log(logging.INFO if gap.cause == NOT_PUBLISHED else logging.WARNING, "%s", gap.describe())
