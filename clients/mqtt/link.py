"""The MQTT bridge's connection to the broker (paho-mqtt 2.x), kept up in paho's network thread.

The bridge's own loop keeps reading the bus whatever the broker does; this link only says whether it is connected
and takes messages while it is. paho reconnects with exponential backoff (0.5 s doubling up to
``[mqtt] reconnect_max_seconds``). The last will, ``PREFIX/available`` = ``offline`` (QoS 1, retained), is
registered with every connection, so the broker announces a bridge that died without saying goodbye.

At most ``MAX_IN_FLIGHT`` messages are handed to paho and not yet acknowledged; the rest wait in the bridge's
bounded outbox. With QoS 1 or 2, paho re-sends what was in flight when a connection dropped.

The password is read from a file or an environment variable and never logged; neither is the username.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from emotiond.clients.mqtt.outbox import Outgoing
from emotiond.core.errors import UsageError
from emotiond.core.secrets import SecretError, read_secret
from emotiond.core.settings import MqttSettings

log = logging.getLogger(__name__)
MAX_IN_FLIGHT = 100
FIRST_RECONNECT_DELAY = 0.5
MAX_INCOMING = 4096  # messages from subscriptions waiting for the bridge's loop; older ones are dropped
MAX_INCOMING_BYTES = 64 * 1024  # larger incoming payloads are ignored (discovery configs are ~1 kB)


class MqttError(UsageError):
    """The broker cannot be used as configured: bad credentials, an unreadable password or CA file."""


@dataclass(frozen=True)
class Broker:
    host: str
    port: int
    tls: bool

    @classmethod
    def from_url(cls, url: str) -> Broker:
        parts = urlsplit(url)  # validated by MqttSettings
        tls = parts.scheme == "mqtts"
        return cls(parts.hostname or "", parts.port or (8883 if tls else 1883), tls)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'mqtts' if self.tls else 'mqtt'}://{host}:{self.port}"


def read_password(settings: MqttSettings) -> str | None:
    """The password: first line of password_file, or the variable named by password_env (unset: none)."""
    try:
        return read_secret(settings.password_file, settings.password_env, "mqtt")
    except SecretError as exc:
        raise MqttError(str(exc)) from None


def default_client_id() -> str:
    host = "".join(c if c.isalnum() or c in "-_" else "-" for c in socket.gethostname())[:32]
    return f"emotiond-{host}-{os.getpid()}"


class _Client(mqtt.Client):
    """paho's client, remembering why the last connection attempt failed (paho only says it will retry)."""

    last_error: OSError | None = None

    def reconnect(self) -> MQTTErrorCode:
        try:
            return super().reconnect()
        except OSError as exc:
            self.last_error = exc
            raise


class BrokerLink:
    def __init__(self, settings: MqttSettings, will_topic: str, subscriptions: tuple[str, ...] = ()):
        self.broker = Broker.from_url(settings.url)
        self.client_id = settings.client_id or default_client_id()
        self._subscriptions = subscriptions
        self._lock = threading.Lock()  # never held while calling paho: its callbacks hold paho's own locks
        self._in_flight: dict[int, int] = {}  # mid -> qos, handed to paho and not yet acknowledged
        self._done_early: set[int] = set()  # acknowledged before publish() had recorded them
        self._incoming: deque[tuple[str, bytes]] = deque(maxlen=MAX_INCOMING)
        self.connected = threading.Event()
        self.connections = 0  # successful CONNACKs so far
        self.refusal: str | None = None  # the broker's reason for refusing the last connection attempt
        self._reported_error = ""
        self._stopping = False
        self._client = _Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv311,
                               clean_session=True)
        self._client.will_set(will_topic, b"offline", qos=1, retain=True)
        password = read_password(settings)
        if settings.username is not None:
            self._client.username_pw_set(settings.username, password)
        elif password is not None:
            log.warning("a broker password is set but [mqtt] username is not; connecting without credentials")
        if self.broker.tls:
            self._set_tls(settings.tls_ca_file)
        self._client.reconnect_delay_set(FIRST_RECONNECT_DELAY, settings.reconnect_max_seconds)
        self._keepalive = settings.keepalive
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message

    def _set_tls(self, ca_file: Path | None) -> None:
        try:
            self._client.tls_set(ca_certs=str(Path(ca_file).expanduser()) if ca_file else None)
        except (OSError, ssl.SSLError) as exc:
            raise MqttError(f"cannot load mqtt.tls_ca_file {ca_file}: {exc}") from None

    # ------------------------------------------------------------ paho's thread
    def _on_connect(self, client: mqtt.Client, _userdata: object, _flags: object, reason: mqtt.ReasonCode,
                    _properties: object) -> None:
        if reason.is_failure:
            if self.refusal != str(reason):  # once per distinct reason, not once per retry
                log.error("broker %s refused the connection: %s", self.broker, reason)
            self.refusal = str(reason)
            return
        self.refusal = None
        self._reported_error = ""
        with self._lock:  # QoS 0 messages in flight when the link dropped are gone; paho re-sends the others
            self._in_flight = {mid: qos for mid, qos in self._in_flight.items() if qos > 0}
            self._done_early.clear()
        for topic in self._subscriptions:
            client.subscribe(topic, qos=1)
        self.connections += 1
        self.connected.set()
        log.info("connected to broker %s as %s", self.broker, self.client_id)

    def _on_disconnect(self, _client: mqtt.Client, _userdata: object, _flags: object, reason: mqtt.ReasonCode,
                       _properties: object) -> None:
        was_connected = self.connected.is_set()
        self.connected.clear()
        if was_connected and not self._stopping:
            log.warning("lost broker %s (%s); reconnecting with backoff", self.broker, reason)

    def _on_connect_fail(self, _client: mqtt.Client, _userdata: object) -> None:
        error = self._client.last_error
        text = f"{type(error).__name__}: {error}" if error else "connection failed"
        if text != self._reported_error:  # once per distinct reason, not once per retry
            self._reported_error = text
            log.warning("cannot reach broker %s (%s); retrying with backoff", self.broker, text)

    def _on_publish(self, _client: mqtt.Client, _userdata: object, mid: int, _reason: object,
                    _properties: object) -> None:
        with self._lock:
            if self._in_flight.pop(mid, None) is None:
                self._done_early.add(mid)

    def _on_message(self, _client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        if len(message.payload) <= MAX_INCOMING_BYTES:
            self._incoming.append((message.topic, bytes(message.payload)))

    # ------------------------------------------------------------ the bridge's thread
    @property
    def tls_failure(self) -> ssl.SSLError | None:
        """The last attempt failed the TLS handshake (a wrong CA file, a certificate for another name)."""
        error = self._client.last_error
        return error if isinstance(error, ssl.SSLError) and not self.connected.is_set() else None

    def start(self) -> None:
        """Connect in paho's thread; the first attempt is retried like any other."""
        self._client.connect_async(self.broker.host, self.broker.port, keepalive=self._keepalive)
        self._client.loop_start()

    def has_room(self) -> bool:
        with self._lock:
            return len(self._in_flight) < MAX_IN_FLIGHT

    @property
    def in_flight(self) -> int:
        with self._lock:
            return len(self._in_flight)

    def publish(self, message: Outgoing) -> bool:
        """Hand a message to paho; False if there is no connection to take it (the caller keeps it)."""
        if not self.connected.is_set():
            return False
        info = self._client.publish(message.topic, message.payload, qos=message.qos, retain=message.retain)
        # paho keeps QoS 1/2 messages it could not send yet, and sends them once connected
        kept = info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS or (
            info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN and message.qos > 0)
        if kept:
            with self._lock:
                if info.mid in self._done_early:
                    self._done_early.discard(info.mid)
                else:
                    self._in_flight[info.mid] = message.qos
        return kept

    def incoming(self) -> list[tuple[str, bytes]]:
        """Messages received on the link's subscriptions since the last call."""
        taken = []
        while self._incoming:
            taken.append(self._incoming.popleft())
        return taken

    def stop(self, goodbye: Outgoing | None = None, timeout: float = 2.0) -> None:
        """Publish ``goodbye`` (the offline availability) if connected, wait for what is in flight, disconnect."""
        deadline = time.monotonic() + timeout
        if goodbye is not None and self.connected.is_set():
            info = self._client.publish(goodbye.topic, goodbye.payload, qos=goodbye.qos, retain=goodbye.retain)
            try:
                info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            except (RuntimeError, ValueError) as exc:  # the connection dropped meanwhile: the will says it
                log.warning("could not publish %s: %s", goodbye.topic, exc)
        while self.connected.is_set() and self.in_flight and time.monotonic() < deadline:
            time.sleep(0.02)
        self._stopping = True
        self._client.disconnect()
        self._client.loop_stop()
        self.connected.clear()
