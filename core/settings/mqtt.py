"""[mqtt]: the MQTT bridge."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from emotiond.core.settings.base import ENV_NAME_PATTERN, _Section

MQTT_TOPIC_PATTERN = r"^[A-Za-z0-9_.-]{1,64}(/[A-Za-z0-9_.-]{1,64}){0,7}$"
MQTT_PASSWORD_ENV = "EMOTIOND_MQTT_PASSWORD"


class MqttSettings(_Section):
    """The MQTT bridge (``emotiond mqtt``; started by ``emotiond run`` when enabled): events, retained states and
    Home Assistant discovery on a broker."""

    enabled: Annotated[bool, Field(description="Start the MQTT bridge with `emotiond run`.")] = False
    url: Annotated[str, Field(min_length=8, max_length=512, description="Broker: mqtt://HOST[:PORT] (default port "
                              "1883) or mqtts://HOST[:PORT] (TLS, default port 8883). Credentials never go in the "
                              "URL.")] = "mqtt://127.0.0.1:1883"
    topic_prefix: Annotated[str, Field(pattern=MQTT_TOPIC_PATTERN, description="First topic levels of everything "
                                       "the bridge publishes (PREFIX/available, PREFIX/events, ...).")] = "emotiond"
    discovery: Annotated[bool, Field(description="Publish Home Assistant MQTT discovery configs (retained) for "
                                     "every camera.")] = True
    discovery_prefix: Annotated[str, Field(pattern=MQTT_TOPIC_PATTERN, description="Home Assistant's discovery "
                                           "prefix.")] = "homeassistant"
    update_interval: Annotated[float, Field(ge=0.1, le=3600.0, description="An 'update' event goes out when a "
                                            "face's smoothed emotion changes, otherwise at most this often (s) "
                                            "per face.")] = 5.0
    stats_interval: Annotated[float, Field(ge=1.0, le=86_400.0, description="Seconds between PREFIX/stats "
                                           "messages.")] = 60.0
    snapshots: Annotated[bool, Field(description="Publish PREFIX/CAMERA/snapshot, a JPEG of the annotated frame, "
                                     "when the dominant emotion changes (makes workers encode frames).")] = False
    snapshot_quality: Annotated[int, Field(ge=10, le=100, description="JPEG quality of snapshots.")] = 80
    qos: Annotated[int, Field(ge=0, le=2, description="QoS of published messages; 1 or 2 re-send what was in "
                                 "flight when the connection dropped.")] = 1
    keepalive: Annotated[int, Field(ge=5, le=3600, description="MQTT keepalive (s): the broker sends the last "
                                    "will after 1.5 times this without traffic.")] = 30
    client_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{0,64}$", description="MQTT client id; empty means "
                                    "emotiond-HOSTNAME-PID.")] = ""
    tls_ca_file: Annotated[Path | None, Field(description="CA certificates (PEM) that sign the broker's "
                                              "certificate, for mqtts://; unset uses the system's.")] = None
    username: Annotated[str | None, Field(min_length=1, max_length=256, description="Username for the broker; "
                                          "the password comes from password_file or password_env.")] = None
    password_file: Annotated[Path | None, Field(description="File holding the broker password (first line). "
                                                "Never logged.")] = None
    password_env: Annotated[str, Field(pattern=ENV_NAME_PATTERN, description="Environment "
                                       "variable read for the password when password_file is unset.")] = (
        MQTT_PASSWORD_ENV)
    queue_size: Annotated[int, Field(ge=1, le=1_000_000, description="Messages held while the broker is away; "
                                     "past this the oldest is dropped and counted (emotiond_mqtt_dropped_total)."
                                     )] = 10_000
    reconnect_max_seconds: Annotated[float, Field(ge=0.5, le=600.0, description="Cap of the exponential backoff "
                                                  "between connection attempts (the first waits 0.5 s).")] = 30.0

    @field_validator("url")
    @classmethod
    def _url_is_a_broker(cls, url: str) -> str:
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"not a broker URL: {exc}") from None
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ValueError("must start with mqtt:// or mqtts://")
        if parts.username is not None or parts.password is not None:
            raise ValueError("credentials do not go in the URL: set [mqtt] username and password_file or "
                             "password_env")
        if not parts.hostname or parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError("must be mqtt[s]://HOST[:PORT] with nothing after the port")
        if port == 0:
            raise ValueError("port must be 1-65535")
        return url

    @model_validator(mode="after")
    def _tls_needs_mqtts(self) -> MqttSettings:
        if self.tls_ca_file is not None and not self.url.startswith("mqtts://"):
            raise ValueError("mqtt.tls_ca_file needs an mqtts:// url")
        return self
