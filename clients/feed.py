"""The viewer's subscription: frames, results and status of one camera (or all), with reconnects.

ZeroMQ reconnects a SUB socket by itself, but after a long silence the socket is rebuilt anyway: that
costs nothing and also recovers from a peer that came back on a different ipc inode or tcp host. Workers
encode frames only while someone subscribes to ``frame.<camera>``, so once a camera is chosen the feed
narrows its frame subscription to that camera to spare the daemon encoding the others.
"""

from __future__ import annotations

import logging
import time

import zmq

from emotiond.daemon.core import bus, protocol
from emotiond.daemon.core.settings import Settings

log = logging.getLogger(__name__)
MAX_MESSAGES_PER_DRAIN = 256  # keeps the GUI responsive when a backlog arrives at once


class LiveFeed:
    def __init__(self, endpoint: str, settings: Settings, camera: str | None = None,
                 rebuild_after: float = 5.0):
        self.endpoint = endpoint
        self.camera = camera
        self._settings = settings
        self._rebuild_after = rebuild_after
        self._sock: zmq.Socket | None = None
        self._last_message = time.monotonic()
        self.bad_messages = 0
        self._connect()

    def _topics(self) -> list[bytes]:
        suffix = self.camera.encode() if self.camera else b""
        return [protocol.FRAME_PREFIX + suffix, protocol.RESULT_PREFIX + suffix, protocol.STATUS_PREFIX + suffix]

    def _connect(self) -> None:
        self.close()
        self._sock = bus.results_subscriber(self.endpoint, self._topics(), self._settings)
        self._last_message = time.monotonic()
        log.debug("subscribed to %s on %s", self._topics(), self.endpoint)

    def choose_camera(self, camera: str) -> None:
        """Narrow the subscription to one camera (frames of the others stop being encoded)."""
        if self.camera == camera or self._sock is None:
            return
        old = self._topics()
        self.camera = camera
        for topic in self._topics():
            self._sock.setsockopt(zmq.SUBSCRIBE, topic)
        for topic in old:
            self._sock.setsockopt(zmq.UNSUBSCRIBE, topic)

    def silent_for(self) -> float:
        return time.monotonic() - self._last_message

    def receive(self, timeout_ms: int) -> list[protocol.Message]:
        """Messages waiting now (after up to ``timeout_ms`` for the first), decoded and filtered."""
        assert self._sock is not None
        if self.silent_for() > self._rebuild_after:
            self._connect()
        messages: list[protocol.Message] = []
        if not self._sock.poll(timeout_ms):
            return messages
        while len(messages) < MAX_MESSAGES_PER_DRAIN:
            try:
                parts = self._sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            self._last_message = time.monotonic()
            try:
                message = protocol.decode(parts, self._settings.bus.max_frame_pixels)
            except protocol.ProtocolError as exc:
                self.bad_messages += 1
                log.warning("skipping malformed message: %s", exc)
                continue
            camera = message.header.camera if isinstance(message, protocol.Frame) else getattr(message, "camera", "")
            if self.camera and camera != self.camera:
                continue  # topic prefixes also match longer camera names
            messages.append(message)
        return messages

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None
