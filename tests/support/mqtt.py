"""A real Mosquitto broker per test, a paho subscriber that records everything, and Home Assistant's rules for
discovery payloads."""

from __future__ import annotations

import getpass
import json
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from support.daemon import free_port, wait_for


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto",) if Path(p).is_file()), None)
    if found is None:
        pytest.fail("mosquitto is not installed (Debian package mosquitto; `make apt` installs it)")
    return found


@dataclass
class Broker:
    """``mosquitto -c CONF`` on 127.0.0.1:PORT; restartable on the same port with the same persistence file."""

    folder: Path
    port: int
    extra_config: str = ""
    persistence: bool = False
    process: subprocess.Popen | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> Broker:
        config = self.folder / "mosquitto.conf"
        # mosquitto started as root switches to the user named here (by default "mosquitto", who could not read
        # the test's files or save its persistence file in the test's folder)
        lines = [f"user {getpass.getuser()}", f"listener {self.port} 127.0.0.1", self.extra_config]
        if "allow_anonymous" not in self.extra_config:
            lines.append("allow_anonymous true")
        if self.persistence:
            lines += ["persistence true", f"persistence_location {self.folder}/", "autosave_interval 0"]
        config.write_text("\n".join(lines) + "\n")
        self.starts += 1
        log = (self.folder / f"mosquitto{self.starts}.log").open("w")
        self.process = subprocess.Popen([mosquitto_binary(), "-c", str(config)], stdout=log,
                                        stderr=subprocess.STDOUT)
        wait_for(self._accepts, 10, f"mosquitto on port {self.port}")
        return self

    def _accepts(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"mosquitto exited: {self.log()[-2000:]}")
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        """SIGTERM: mosquitto saves its persistence file (retained messages, sessions) on the way out."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(10)
        self.process = None

    def log(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.folder.glob("mosquitto*.log")))


def brokers(tmp_path: Path) -> Iterator:
    """For a fixture: ``start(**options)`` runs a broker on a free port; every broker is stopped afterwards."""
    brokers: list[Broker] = []

    def start(extra_config: str = "", persistence: bool = False) -> Broker:
        folder = tmp_path / f"broker{len(brokers)}"
        folder.mkdir()
        broker = Broker(folder, free_port(), extra_config, persistence)
        brokers.append(broker)
        return broker.start()

    yield start
    for broker in brokers:
        broker.stop()


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool
    at: float  # time.time() on arrival

    def json(self) -> dict:
        return json.loads(self.payload)

    @property
    def text(self) -> str:
        return self.payload.decode()


@dataclass
class Watcher:
    """A paho subscriber recording every message in order. ``session`` keeps a persistent session (QoS 1), so the
    broker queues what arrives while this client is away, across broker restarts with persistence."""

    port: int
    topics: tuple[str, ...]
    session: str | None = None
    auth: tuple[str, str] | None = None
    messages: list[Received] = field(default_factory=list)
    subscribed: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.session or "",
                                  clean_session=self.session is None)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.1, 0.5)
        if self.auth is not None:
            self.client.username_pw_set(*self.auth)
        self.client.connect_async("127.0.0.1", self.port, keepalive=10)
        self.client.loop_start()
        wait_for(self.subscribed.is_set, 10, "the test subscriber's SUBACK")

    def _on_connect(self, client: mqtt.Client, *_: object) -> None:
        client.subscribe([(topic, 1) for topic in self.topics])

    def _on_message(self, _client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        self.messages.append(Received(message.topic, bytes(message.payload), bool(message.retain), time.time()))

    def on(self, topic: str) -> list[Received]:
        return [m for m in list(self.messages) if m.topic == topic]

    def last(self, topic: str) -> Received | None:
        found = self.on(topic)
        return found[-1] if found else None

    def texts(self, topic: str) -> list[str]:
        return [m.text for m in self.on(topic)]

    def events(self, topic: str = "emotiond/events") -> list[dict]:
        return [m.json() for m in self.on(topic)]

    def wait(self, predicate, timeout: float = 30.0, what: str = "MQTT messages"):
        return wait_for(predicate, timeout, what)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


SENTINEL_TOPIC = "emotiond-test/sentinel"


def retained_now(port: int, topic_filter: str, timeout: float = 30.0) -> dict[str, bytes]:
    """The retained messages under ``topic_filter`` (topic to payload; an emptied topic is not retained), read
    with a positive control instead of a sleep: a sentinel is retained first, then a fresh subscriber subscribes
    to the filter and, once that is acknowledged, to the sentinel. The broker queues a subscription's retained
    messages as it handles the SUBSCRIBE, and sends one client's QoS 1 messages in order, so when the sentinel
    arrives every retained message of the filter has arrived before it."""
    token = f"{time.monotonic_ns()}".encode()
    publisher = mqtt.Client(CallbackAPIVersion.VERSION2)
    publisher.connect("127.0.0.1", port, keepalive=10)
    publisher.loop_start()
    try:
        publisher.publish(SENTINEL_TOPIC, token, qos=1, retain=True).wait_for_publish(timeout)
    finally:
        publisher.disconnect()
        publisher.loop_stop()
    late = Watcher(port, (topic_filter,))  # returns after its SUBACK
    try:
        late.client.subscribe(SENTINEL_TOPIC, 1)
        wait_for(lambda: any(m.payload == token for m in late.on(SENTINEL_TOPIC)), timeout,
                 f"the retained sentinel after the retained messages of {topic_filter}")
        return {m.topic: m.payload for m in list(late.messages) if m.retain and m.topic != SENTINEL_TOPIC}
    finally:
        late.close()


def watchers() -> Iterator:
    """For a fixture: ``start(port, *topics, ...)`` subscribes a Watcher; every one is closed afterwards."""
    watchers: list[Watcher] = []

    def start(port: int, *topics: str, session: str | None = None, auth: tuple[str, str] | None = None) -> Watcher:
        watcher = Watcher(port, topics or ("#",), session, auth)
        watchers.append(watcher)
        return watcher

    yield start
    for watcher in watchers:
        watcher.close()


# ---------------------------------------------------------------- Home Assistant's discovery rules

# From Home Assistant's MQTT documentation (home-assistant.io/integrations/sensor.mqtt, binary_sensor.mqtt,
# image.mqtt and the MQTT discovery page): the keys each platform requires, the keys it accepts that these
# payloads may use, and the device block's rules (identifiers or connections; only with unique_id).
HA_REQUIRED = {"sensor": {"state_topic"}, "binary_sensor": {"state_topic"}, "image": set()}
HA_EXCLUSIVE_REQUIRED = {"image": {"image_topic", "url_topic"}}  # exactly one of these
HA_COMMON_KEYS = {"availability", "availability_mode", "availability_template", "availability_topic", "device",
                  "enabled_by_default", "encoding", "entity_category", "entity_picture", "icon",
                  "json_attributes_template", "json_attributes_topic", "name", "object_id", "default_entity_id",
                  "origin", "payload_available", "payload_not_available", "qos", "unique_id"}
HA_PLATFORM_KEYS = {
    "sensor": {"device_class", "expire_after", "force_update", "last_reset_value_template", "options",
               "suggested_display_precision", "state_class", "state_topic", "unit_of_measurement",
               "value_template"},
    "binary_sensor": {"device_class", "expire_after", "force_update", "off_delay", "payload_off", "payload_on",
                      "state_topic", "value_template"},
    "image": {"content_type", "image_encoding", "image_topic", "url_template", "url_topic"},
}
HA_DEVICE_KEYS = {"configuration_url", "connections", "hw_version", "identifiers", "manufacturer", "model",
                  "model_id", "name", "serial_number", "suggested_area", "sw_version", "via_device"}
HA_STATE_CLASSES = {"measurement", "measurement_angle", "total", "total_increasing"}
HA_BINARY_DEVICE_CLASSES = {"occupancy", "presence", "motion", "moving"}  # the subset that fits "face present"


def ha_problems(component: str, config: dict) -> list[str]:
    """What Home Assistant would reject or ignore in one discovery config; empty when it is valid."""
    problems = []
    allowed = HA_COMMON_KEYS | HA_PLATFORM_KEYS.get(component, set())
    if component not in HA_PLATFORM_KEYS:
        return [f"unknown component {component}"]
    problems += [f"missing required {key}" for key in HA_REQUIRED[component] - config.keys()]
    exclusive = HA_EXCLUSIVE_REQUIRED.get(component)
    if exclusive and len(exclusive & config.keys()) != 1:
        problems.append(f"needs exactly one of {sorted(exclusive)}")
    problems += [f"unknown key {key}" for key in config.keys() - allowed]
    if "availability" in config and "availability_topic" in config:
        problems.append("availability and availability_topic are exclusive")
    device = config.get("device")
    if device is not None:
        if "unique_id" not in config:
            problems.append("device needs unique_id")
        if not (isinstance(device.get("identifiers"), list) and device["identifiers"]) and not device.get(
                "connections"):
            problems.append("device needs identifiers or connections")
        problems += [f"unknown device key {key}" for key in device.keys() - HA_DEVICE_KEYS]
    for key, value in config.items():
        if key.endswith("_topic") and (not isinstance(value, str) or not value or set(value) & {"+", "#"}):
            problems.append(f"{key} is not a topic one can publish to: {value!r}")
    if component == "sensor" and "state_class" in config and config["state_class"] not in HA_STATE_CLASSES:
        problems.append(f"bad state_class {config['state_class']}")
    if component == "binary_sensor" and config.get("device_class") not in (None, *HA_BINARY_DEVICE_CLASSES):
        problems.append(f"bad device_class {config['device_class']}")
    if "origin" in config and "name" not in config["origin"]:
        problems.append("origin needs name")
    return problems


# ---------------------------------------------------------------- crafted results with tracks

def tracked_result(camera: str, seq: int, tracks: dict[int, str], ended: tuple[int, ...] = ()):
    """A result whose faces carry tracker fields, as a worker with ``[tracking]`` on publishes them."""
    import dataclasses

    from support.clients import crafted_result

    base = crafted_result(camera, seq)
    faces = []
    for index, (track, emotion) in enumerate(tracks.items()):
        scores = {label: 0.01 for label in base.faces[0].scores}
        scores[emotion] = 0.94
        faces.append(dataclasses.replace(base.faces[0], box=(10 + 120 * index, 20, 100, 100), emotion=emotion,
                                         scores=scores, track_id=track, smoothed_emotion=emotion,
                                         smoothed_confidence=0.9))
    return dataclasses.replace(base, faces=tuple(faces), extra={"ended_tracks": list(ended)})


def face_that_leaves(path: Path, visible: int, absent: int) -> Path:
    """An MP4 of one real face photo moving for ``visible`` frames, then the empty background."""
    import cv2

    from emotiond.capture import synthetic

    spec = synthetic.SceneSpec(faces=1, frames=visible + absent)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), spec.fps, (spec.width, spec.height))
    assert writer.isOpened(), f"cannot write {path}"
    try:
        for index in range(spec.frames):
            frame = synthetic.render(spec, index)[0] if index < visible else \
                synthetic._background(spec.width, spec.height).copy()
            writer.write(frame)
    finally:
        writer.release()
    return path


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator:
    """``mosquitto()`` starts a broker for this test (see ``brokers``)."""
    yield from brokers(tmp_path)


@pytest.fixture
def mqtt_watch() -> Iterator:
    """``mqtt_watch(port, *topics)`` subscribes a recording client for this test (see ``watchers``)."""
    yield from watchers()
