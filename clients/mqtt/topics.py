"""Where the MQTT bridge publishes: one place that names every topic under ``[mqtt] topic_prefix``.

    PREFIX/available            online / offline (retained; offline is also the last will)
    PREFIX/events               one JSON message per track change (new, update, end)
    PREFIX/CAMERA/faces         faces in view now (retained)
    PREFIX/CAMERA/emotion       the dominant smoothed emotion, or none (retained)
    PREFIX/CAMERA/EMOTION       faces showing that emotion now (retained)
    PREFIX/CAMERA/snapshot      JPEG of the annotated frame when the dominant emotion changes (retained)
    PREFIX/stats                figures of the daemon and the bridge, every stats_interval
    PREFIX/marker/set           (subscribed) a history marker to set: a label, or JSON {"label", "camera"}
    PREFIX/marker/result        the answer to each marker command: {"ok": true, "marker": {...}} or an error
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Per-camera state names; an emotion label with one of these names (or characters MQTT topics cannot hold) gets
# no topic of its own.
CAMERA_STATES = ("faces", "emotion", "snapshot")
_LABEL = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def emotion_topic_ok(label: str) -> bool:
    return bool(_LABEL.match(label)) and label not in CAMERA_STATES


@dataclass(frozen=True)
class Topics:
    prefix: str

    @property
    def available(self) -> str:
        return f"{self.prefix}/available"

    @property
    def events(self) -> str:
        return f"{self.prefix}/events"

    @property
    def stats(self) -> str:
        return f"{self.prefix}/stats"

    @property
    def marker_set(self) -> str:
        return f"{self.prefix}/marker/set"

    @property
    def marker_result(self) -> str:
        return f"{self.prefix}/marker/result"

    def state(self, camera: str, name: str) -> str:
        """``faces``, ``emotion`` or an emotion label of one camera."""
        return f"{self.prefix}/{camera}/{name}"

    def snapshot(self, camera: str) -> str:
        return f"{self.prefix}/{camera}/snapshot"

    def aggregate(self, camera: str) -> str:
        """The latest aggregates window of a camera ([privacy] publish = "aggregates")."""
        return f"{self.prefix}/{camera}/aggregate"

    @property
    def node_id(self) -> str:
        """The prefix as one Home Assistant node id (letters, digits, _ and -)."""
        return re.sub(r"[^A-Za-z0-9_-]", "_", self.prefix)
