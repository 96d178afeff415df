"""The MQTT bridge: results from the bus in, events, retained states, discovery and stats out to a broker.

One loop reads the results bus (through ``Subscription``) and never waits for the broker: what it has to say
goes into the outbox, and the outbox drains into the broker link whenever that is connected. After every
(re)connect the retained topics go out again, since a restarted broker may have lost them. On a clean stop the
bus is drained, the outbox flushed for a moment, and ``PREFIX/available`` set to ``offline``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from emotiond.clients.mqtt.discovery import Discovery
from emotiond.clients.mqtt.events import TrackEvents, face_emotion
from emotiond.clients.mqtt.link import BrokerLink, MqttError
from emotiond.clients.mqtt.markers import MarkerCommands
from emotiond.clients.mqtt.metrics import BridgeMetrics, daemon_figures
from emotiond.clients.mqtt.outbox import BrokerOutbox, Outgoing
from emotiond.clients.mqtt.snapshots import Snapshots
from emotiond.clients.mqtt.states import camera_state
from emotiond.clients.mqtt.topics import Topics, emotion_topic_ok
from emotiond.clients.subscribe import Subscription
from emotiond.core import protocol
from emotiond.core.settings import Settings

log = logging.getLogger(__name__)
POLL_MS = 100
MAX_CAMERAS = 256
MAX_LABELS = 64  # emotion labels with a topic of their own, per camera (a model has 7 or 8)
STOP_FLUSH_SECONDS = 1.5


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class Bridge:
    def __init__(self, settings: Settings, endpoint: str, link: BrokerLink, metrics: BridgeMetrics, *,
                 fail_on_refusal: bool = False):
        self.settings = settings
        self.options = settings.mqtt
        self.topics = Topics(self.options.topic_prefix)
        self.discovery = (Discovery(self.topics, self.options.discovery_prefix, self.options.snapshots)
                          if self.options.discovery else None)
        self.link = link
        self.metrics = metrics
        self.fail_on_refusal = fail_on_refusal
        self.outbox = BrokerOutbox(self.options.queue_size, on_drop=lambda _message: metrics.dropped.inc())
        self.events = TrackEvents(self.options.update_interval)
        self.snapshots = Snapshots(self.options.snapshot_quality) if self.options.snapshots else None
        self.markers = MarkerCommands(settings) if settings.history.enabled else None
        kinds = ("result", "status", "tracks", "aggregate", "frame") if self.snapshots else (
            "result", "status", "tracks", "aggregate")
        self.subscription = Subscription(endpoint, (), kinds=kinds, settings=settings)
        self.configured = tuple(source.name for source in settings.sources)
        self.cameras: dict[str, set[str]] = {}  # camera -> its emotion labels with a topic
        self.dominant: dict[str, str] = {}
        self._connections_seen = 0
        self._started = time.monotonic()
        self._next_stats = self._started + self.options.stats_interval
        self._next_expiry = self._started + 1.0
        self._refused_camera_logged = False
        self._retain(self.topics.available, b"online", "availability", qos=1)
        for camera in self.configured:
            self._add_camera(camera)

    # ------------------------------------------------------------ building messages
    def _retain(self, topic: str, payload: bytes, kind: str, qos: int | None = None) -> None:
        self.outbox.retain(Outgoing(topic, payload, kind, self.options.qos if qos is None else qos, True))

    def _send(self, topic: str, payload: bytes, kind: str) -> None:
        """Queue a message, and send at once while connected: the queue bounds an outage, not a burst."""
        self.outbox.send(Outgoing(topic, payload, kind, self.options.qos, False))
        if self.link.connected.is_set():
            self._drain()

    def _add_camera(self, camera: str) -> bool:
        """Announce a camera (discovery, zero states) the first time it is configured or seen."""
        if camera in self.cameras:
            return True
        if len(self.cameras) >= MAX_CAMERAS:
            if not self._refused_camera_logged:
                log.warning("more than %d cameras; ignoring new ones such as %s", MAX_CAMERAS, camera)
                self._refused_camera_logged = True
            return False
        self.cameras[camera] = set()
        if self.discovery is not None:
            for topic, config in self.discovery.configs(camera).items():
                self._retain(topic, self.discovery.payload(config), "discovery", qos=1)
        self._publish_state(camera, [])
        return True

    def _publish_state(self, camera: str, emotions: list[tuple[str, float]]) -> None:
        state = camera_state(emotions, sorted(self.cameras[camera]))
        self._retain(self.topics.state(camera, "faces"), str(state.faces).encode(), "state")
        self._retain(self.topics.state(camera, "emotion"), state.dominant.encode(), "state")
        for label, count in state.counts.items():
            self._retain(self.topics.state(camera, label), str(count).encode(), "state")
        previous = self.dominant.get(camera)
        self.dominant[camera] = state.dominant
        if self.snapshots is not None and previous is not None and state.dominant != previous and state.faces:
            self.snapshots.want(camera)

    def _learn_labels(self, camera: str, result: protocol.Result) -> None:
        labels = self.cameras[camera]
        for face in result.faces:
            for label in face.scores:
                if label not in labels and emotion_topic_ok(label) and len(labels) < MAX_LABELS:
                    labels.add(label)

    # ------------------------------------------------------------ handling the bus
    def handle(self, messages: list[protocol.Message], now: float) -> None:
        for message in messages:
            if isinstance(message, protocol.Result):
                self._on_result(message, now)
                if self.snapshots is not None:
                    self._on_snapshot(self.snapshots.add(message))
            elif isinstance(message, protocol.Frame) and self.snapshots is not None:
                self._on_snapshot(self.snapshots.add(message))
            elif isinstance(message, protocol.Status):
                self._add_camera(message.camera)
            elif isinstance(message, protocol.TracksEnded):
                self._on_tracks_ended(message, now)
            elif isinstance(message, protocol.Aggregate) and self._add_camera(message.camera):
                # aggregates-only mode: the latest window, retained, as JSON (no face states: there are no faces)
                self._retain(self.topics.aggregate(message.camera), _json(message.to_dict()), "state")

    def _on_result(self, result: protocol.Result, now: float) -> None:
        if not self._add_camera(result.camera):
            return
        self._learn_labels(result.camera, result)
        for event in self.events.feed(result, now):
            self._send(self.topics.events, _json(event), "event")
        tracked = any(face.track_id is not None for face in result.faces)
        live = self.events.live(result.camera)
        if tracked or live:
            emotions = [face_emotion(state.face) for state in live]
        else:
            emotions = [face_emotion(face) for face in result.faces]
        self._publish_state(result.camera, emotions)

    def _on_tracks_ended(self, message: protocol.TracksEnded, now: float) -> None:
        """The camera stopped producing frames: ``end`` for each of its tracks, and its states back to none."""
        if message.camera not in self.cameras:
            return
        for event in self.events.end(message, now):
            self._send(self.topics.events, _json(event), "event")
        self._publish_state(message.camera, [face_emotion(state.face) for state in self.events.live(message.camera)])

    def _on_snapshot(self, snapshot: tuple[str, bytes] | None) -> None:
        if snapshot is not None:
            camera, jpeg = snapshot
            self._retain(self.topics.snapshot(camera), jpeg, "snapshot")

    # ------------------------------------------------------------ housekeeping
    def maintain(self, now: float) -> None:
        """Refusals, reconnects, stale tracks, stats and leftover discovery configs; then send what can go."""
        if self.link.refusal is not None and self.fail_on_refusal:
            raise MqttError(f"broker {self.link.broker} refused the connection: {self.link.refusal} "
                            "(check [mqtt] username and password_file / password_env)")
        failure = self.link.tls_failure
        if failure is not None and self.fail_on_refusal:
            raise MqttError(f"TLS with broker {self.link.broker} failed: {failure} (check [mqtt] tls_ca_file and "
                            "the host name in the URL)")
        if now >= self._next_expiry:
            self._next_expiry = now + 1.0
            expired = list(self.events.expire(now))
            for event in expired:
                self._send(self.topics.events, _json(event), "event")
            for camera in {event["after"]["camera"] for event in expired}:
                self._publish_state(camera, [face_emotion(s.face) for s in self.events.live(camera)])
        if now >= self._next_stats:
            self._next_stats = now + self.options.stats_interval
            self._send(self.topics.stats, _json(self.stats(now)), "stats")
        incoming = self.link.incoming()
        self._on_marker_commands([payload for topic, payload in incoming if topic == self.topics.marker_set])
        self._forget_leftover_configs([(topic, payload) for topic, payload in incoming
                                       if topic != self.topics.marker_set])
        self.pump()

    def _on_marker_commands(self, payloads: list[bytes]) -> None:
        if self.markers is None:
            return
        for payload in payloads:
            self._send(self.topics.marker_result, _json(self.markers.handle(payload)), "marker")

    def _forget_leftover_configs(self, incoming: list[tuple[str, bytes]]) -> None:
        if self.discovery is None:
            return
        for topic, payload in incoming:
            camera = self.discovery.camera_name(topic)
            if not payload or camera is None or self.outbox.retained(topic) not in (None, b""):
                continue
            if camera in self.cameras or self.configured:  # an entity no longer published, or a removed camera
                log.info("removing Home Assistant entity %s (no longer configured)", topic)
                self._retain(topic, b"", "discovery", qos=1)

    def pump(self) -> None:
        self._drain()
        self.metrics.connected.set(1 if self.link.connected.is_set() else 0)
        self.metrics.queued.set(len(self.outbox))

    def _drain(self) -> None:
        """Send what the link takes. A new connection is noticed here, the only place that sends, before anything
        goes out on it: otherwise a value sent on it first (``online``) went out twice."""
        if self.link.connected.is_set():
            connections = self.link.connections  # read after connected is set: the current connection's number
            if connections != self._connections_seen:
                self._connections_seen = connections
                self.outbox.resend_retained()
        while self.link.has_room():
            message = self.outbox.pop()
            if message is None:
                break
            if not self.link.publish(message):
                self.outbox.put_back(message)
                break
            self.metrics.published.labels(message.kind).inc()

    def stats(self, now: float) -> dict[str, Any]:
        cameras = {camera: {"faces": int(self.outbox.retained(self.topics.state(camera, "faces")) or 0),
                            "emotion": self.dominant.get(camera, "none")} for camera in self.cameras}
        bridge = {"connected": self.link.connected.is_set(), "queued": len(self.outbox),
                  "dropped": self.outbox.dropped, "bad_messages": dict(self.subscription.bad_messages),
                  "uptime_seconds": round(now - self._started, 1)}
        return {"at": time.time(), "cameras": cameras, "bridge": bridge,
                "metrics": daemon_figures(self.settings.bus.runtime_dir / "metrics")}

    # ------------------------------------------------------------ running
    def run(self, should_stop: Callable[[], bool], tick: Callable[[], None] = lambda: None) -> int:
        log.info("mqtt bridge: results from %s to %s under %s/", self.subscription.endpoint, self.link.broker,
                 self.topics.prefix)
        self.link.start()
        try:
            while not should_stop():
                tick()
                messages = self.subscription.receive(POLL_MS)
                now = time.monotonic()
                self.handle(messages, now)
                self.maintain(now)
            while messages := self.subscription.receive(0):  # what the bus already delivered still goes out
                self.handle(messages, time.monotonic())
            self._flush(STOP_FLUSH_SECONDS)
        finally:
            self.subscription.close()
            if self.markers is not None:
                self.markers.close()
            self.link.stop(Outgoing(self.topics.available, b"offline", "availability", 1, True))
            self.metrics.connected.set(0)
            log.info("mqtt bridge stopped: %d messages dropped, %d still queued", self.outbox.dropped,
                     len(self.outbox))
        return 0

    def _flush(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (len(self.outbox) or self.link.in_flight) and self.link.connected.is_set() \
                and time.monotonic() < deadline:
            self.pump()
            time.sleep(0.01)


def build_bridge(settings: Settings, endpoint: str | None = None, metrics: BridgeMetrics | None = None, *,
                 fail_on_refusal: bool = False) -> Bridge:
    """A bridge and its broker link from the settings (raises MqttError for an unreadable password or CA)."""
    topics = Topics(settings.mqtt.topic_prefix)
    subscriptions: tuple[str, ...] = ()
    if settings.mqtt.discovery:
        subscriptions = (Discovery(topics, settings.mqtt.discovery_prefix, settings.mqtt.snapshots).readback_topic,)
    if settings.history.enabled:  # marker commands (docs/mqtt.md)
        subscriptions = (*subscriptions, topics.marker_set)
    link = BrokerLink(settings.mqtt, topics.available, subscriptions)
    return Bridge(settings, endpoint or settings.endpoint("results"), link, metrics or BridgeMetrics(),
                  fail_on_refusal=fail_on_refusal)
