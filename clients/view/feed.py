"""The viewer's subscription: frames, results and status of one camera (or all), with reconnects.

ZeroMQ reconnects a SUB socket by itself, but after a long silence the socket is rebuilt anyway: that
costs nothing and also recovers from a peer that came back on a different ipc inode or tcp host. Workers
encode frames only while someone subscribes to ``frame.<camera>``, so once a camera is chosen the feed
narrows its subscription to that camera to spare the daemon encoding the others.
"""

from __future__ import annotations

import logging

from emotiond.clients.subscribe import Subscription
from emotiond.core import protocol
from emotiond.core.settings import Settings

log = logging.getLogger(__name__)


class LiveFeed:
    def __init__(self, endpoint: str, settings: Settings, camera: str | None = None,
                 rebuild_after: float = 5.0):
        self._subscription = Subscription(endpoint, [camera] if camera else [],
                                          kinds=("frame", "result", "status"), settings=settings)
        self._rebuild_after = rebuild_after

    @property
    def camera(self) -> str | None:
        cameras = self._subscription.cameras
        return cameras[0] if cameras else None

    @property
    def bad_messages(self) -> int:
        return sum(self._subscription.bad_messages.values())

    def choose_camera(self, camera: str) -> None:
        """Narrow the subscription to one camera (frames of the others stop being encoded)."""
        if self.camera != camera:
            self._subscription.set_cameras([camera])

    def receive(self, timeout_ms: int) -> list[protocol.Message]:
        """Messages waiting now (after up to ``timeout_ms`` for the first), decoded and filtered."""
        if self._subscription.silent_for() > self._rebuild_after:
            log.debug("no message for %.1f s: rebuilding the subscription", self._rebuild_after)
            self._subscription.connect()
        return self._subscription.receive(timeout_ms)

    def close(self) -> None:
        self._subscription.close()
