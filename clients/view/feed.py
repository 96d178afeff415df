"""The viewer's subscription: frames, results and status of one camera (or all), rebuilt after a silence like
every ``Subscription``. Workers encode frames only while someone subscribes to ``frame.<camera>``, so once a
camera is chosen the feed narrows its subscription to that camera to spare the daemon encoding the others.
"""

from __future__ import annotations

from emotiond.clients.subscribe import Subscription
from emotiond.core import protocol
from emotiond.core.settings import Settings


class LiveFeed:
    def __init__(self, endpoint: str, settings: Settings, camera: str | None = None):
        self._subscription = Subscription(endpoint, [camera] if camera else [],
                                          kinds=("frame", "result", "status"), settings=settings)

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
        return self._subscription.receive(timeout_ms)

    def close(self) -> None:
        self._subscription.close()
