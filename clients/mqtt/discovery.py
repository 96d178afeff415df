"""Home Assistant MQTT discovery: the retained config messages that make each camera a device with entities.

Per camera: a ``sensor`` for the dominant emotion, a ``sensor`` for the face count, a ``binary_sensor`` for "face
present" (on while the face count is above 0), and an ``image`` for the snapshot topic when snapshots are on.
Config topics are ``DISCOVERY_PREFIX/COMPONENT/NODE_ID/CAMERA_ENTITY/config``; ``unique_id`` is
``NODE_ID_CAMERA_ENTITY``, stable across restarts. Every entity follows ``PREFIX/available``.

An entity is removed by an empty retained config. The bridge reads back its own configs from the broker (they are
retained) and empties those it no longer publishes: a camera removed from the config, or the snapshot image once
snapshots are off.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from emotiond.clients.mqtt.topics import Topics

# entity key -> component; the key ends the object id (CAMERA_KEY), so a config topic names its camera
ENTITIES = {"emotion": "sensor", "faces": "sensor", "face": "binary_sensor", "snapshot": "image"}


def software_version() -> str:
    try:
        return metadata.version("emotiond")
    except metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class Discovery:
    topics: Topics
    prefix: str  # Home Assistant's discovery prefix
    snapshots: bool
    version: str = ""

    def config_topic(self, camera: str, key: str) -> str:
        return f"{self.prefix}/{ENTITIES[key]}/{self.topics.node_id}/{camera}_{key}/config"

    @property
    def readback_topic(self) -> str:
        """Every config this bridge's node may have left on the broker."""
        return f"{self.prefix}/+/{self.topics.node_id}/+/config"

    def camera_name(self, config_topic: str) -> str | None:
        """The camera of one of this node's config topics, or None for anyone else's."""
        levels = config_topic.split("/")
        prefix_levels = self.prefix.count("/") + 1
        if (len(levels) != prefix_levels + 4 or "/".join(levels[:prefix_levels]) != self.prefix
                or levels[-1] != "config" or levels[-3] != self.topics.node_id):
            return None
        component, object_id = levels[-4], levels[-2]
        for key, kind in ENTITIES.items():
            if kind == component and object_id.endswith(f"_{key}") and len(object_id) > len(key) + 1:
                return object_id[: -len(key) - 1]
        return None

    def configs(self, camera: str) -> dict[str, dict[str, Any]]:
        """Config topic -> payload, for one camera."""
        version = self.version or software_version()
        node = self.topics.node_id
        device = {"identifiers": [f"{node}_{camera}"], "name": f"emotiond {camera}", "model": "emotiond camera",
                  "manufacturer": "emotiond", "sw_version": version}
        common = {"availability_topic": self.topics.available, "device": device,
                  "origin": {"name": "emotiond", "sw_version": version}}
        faces = self.topics.state(camera, "faces")
        entities: dict[str, dict[str, Any]] = {
            "emotion": {"name": "Emotion", "state_topic": self.topics.state(camera, "emotion"),
                        "icon": "mdi:emoticon-outline"},
            "faces": {"name": "Faces", "state_topic": faces, "state_class": "measurement",
                      "icon": "mdi:face-recognition"},
            "face": {"name": "Face present", "state_topic": faces, "device_class": "occupancy",
                     "value_template": "{{ 'ON' if value | int(0) > 0 else 'OFF' }}"},
        }
        if self.snapshots:
            entities["snapshot"] = {"name": "Snapshot", "image_topic": self.topics.snapshot(camera),
                                    "content_type": "image/jpeg"}
        return {self.config_topic(camera, key): {**entity, "unique_id": f"{node}_{camera}_{key}", **common}
                for key, entity in entities.items()}

    @staticmethod
    def payload(config: dict[str, Any]) -> bytes:
        return json.dumps(config, separators=(",", ":"), sort_keys=True).encode()
