"""The MQTT bridge's metrics, and the daemon's figures for ``PREFIX/stats``.

Under ``emotiond run`` the bridge is a child of the supervisor and its series join the daemon's /metrics
(multiprocess mode); ``emotiond mqtt`` keeps them in a private registry served by ``--metrics-port``.

``PREFIX/stats`` carries the same figures as the daemon's /metrics: they are read from the daemon's multiprocess
metric files in its runtime folder (so a bridge on the daemon's host needs no HTTP scrape), leaving out histogram
buckets.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
TOPIC_KINDS = ("availability", "discovery", "event", "state", "snapshot", "stats", "marker")


class BridgeMetrics:
    def __init__(self, registry: Any = None):
        """``registry`` None: the default one (the daemon's multiprocess files when run by the supervisor)."""
        from prometheus_client import REGISTRY, Counter, Gauge

        self.registry = registry if registry is not None else REGISTRY
        self.published = Counter("emotiond_mqtt_published_total", "Messages handed to the broker, by topic kind.",
                                 ["topic_kind"], registry=self.registry)
        self.dropped = Counter("emotiond_mqtt_dropped_total", "Queued messages dropped (oldest first) because the "
                               "outgoing queue was full while the broker was away.", registry=self.registry)
        self.connected = Gauge("emotiond_mqtt_connected", "1 while the bridge is connected to the broker.",
                               registry=self.registry, multiprocess_mode="livemax")
        self.queued = Gauge("emotiond_mqtt_queued", "Messages waiting for the broker.", registry=self.registry,
                            multiprocess_mode="livemax")
        for kind in TOPIC_KINDS:
            self.published.labels(kind)
        self.connected.set(0)
        self.queued.set(0)

    def serve(self, host: str, port: int) -> int:
        from emotiond.core.listen import serve_metrics

        bound = serve_metrics("the MQTT bridge's /metrics", host, port, self.registry,
                              "--metrics-port (0: any free port)")
        log.info("mqtt bridge metrics on http://%s:%d/metrics", host, bound)
        return bound


def daemon_figures(metrics_dir: Path) -> dict[str, dict[str, float]]:
    """The daemon's /metrics samples by name, then by label set (``camera=cam0,reason=stale``; ``""`` for none)."""
    if not metrics_dir.is_dir():
        return {}
    from prometheus_client import multiprocess

    figures: dict[str, dict[str, float]] = {}
    try:
        families = list(multiprocess.MultiProcessCollector(None, path=str(metrics_dir)).collect())
    except (OSError, ValueError) as exc:  # files of a stopping daemon vanish while being read
        log.warning("cannot read the daemon's metrics in %s: %s", metrics_dir, exc)
        return {}
    for family in families:
        for sample in family.samples:
            if sample.name.endswith(("_bucket", "_created")) or not sample.name.startswith("emotiond_"):
                continue
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()) if k != "pid")
            figures.setdefault(sample.name, {})[labels] = sample.value
    return figures
