"""The MQTT bridge as a process: a child of ``emotiond run`` (``[mqtt] enabled = true``), or ``emotiond mqtt``.

Imports stay inside the functions: the command line imports this module to list the roles, and must not pay for
paho or ZeroMQ to print its help.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Any

from emotiond.core.settings import Settings

log = logging.getLogger(__name__)


def enabled(settings: Settings) -> bool:
    return settings.mqtt.enabled


def main(settings_data: dict[str, Any], heartbeat: Any = None) -> None:
    """The child's entry point. A broker that refuses the bridge is retried with backoff (someone may fix its
    accounts); settings that cannot work (an unreadable password file) are reported once, and the child then
    idles until stopped instead of being restarted in a loop."""
    from emotiond.clients.mqtt.bridge import build_bridge
    from emotiond.clients.mqtt.link import MqttError
    from emotiond.core.lifecycle import Lifecycle

    settings = Settings.model_validate(settings_data)
    life = Lifecycle("mqtt", heartbeat, settings.logging.level)
    try:
        bridge = build_bridge(settings)
    except MqttError as exc:
        log.error("mqtt bridge not started: %s", exc)
        while not life.should_stop():
            life.tick()
            time.sleep(0.5)
        raise SystemExit(0) from None
    bridge.run(life.should_stop, life.tick)
    raise SystemExit(0)


def run_command(settings: Settings, endpoint: str | None, metrics_host: str, metrics_port: int | None) -> int:
    """``emotiond mqtt``: runs until SIGTERM or Ctrl-C. A broker that refuses the credentials, or a TLS
    handshake that fails, is a usage error (exit 2); a broker that is down is waited for."""
    from prometheus_client import CollectorRegistry

    from emotiond.clients.mqtt.bridge import build_bridge
    from emotiond.clients.mqtt.metrics import BridgeMetrics

    metrics = BridgeMetrics(CollectorRegistry())
    if metrics_port is not None:  # first: a taken port is one line before anything connects
        metrics.serve(metrics_host, metrics_port)
    bridge = build_bridge(settings, endpoint, metrics, fail_on_refusal=True)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return bridge.run(stop.is_set)
