"""Per-camera figures for ``GET /api/stats``: the same series ``/metrics`` serves, read from the daemon's
multiprocess metric files in its runtime folder (the console is a local client, so it reads them directly
instead of scraping an HTTP port it may not know)."""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
QUANTILES = (0.5, 0.95)
RECENT_SECONDS = 10.0  # the recent drop rate compares with a read at least this old


def read_samples(folder: Path) -> list[Any] | None:
    """Every merged sample of the daemon's metric files, or None when there are none (no local daemon)."""
    files = sorted(str(p) for p in folder.glob("*.db")) if folder.is_dir() else []
    if not files:
        return None
    from prometheus_client.multiprocess import MultiProcessCollector

    try:
        families = MultiProcessCollector.merge(files, accumulate=True)
    except (OSError, ValueError) as exc:  # a file being created or removed by a restarting child
        log.debug("metric files unreadable now: %s", exc)
        return None
    return [sample for family in families for sample in family.samples]


def histogram_quantile(quantile: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus' histogram_quantile over cumulative (upper bound, count) buckets, linear within a bucket."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = quantile * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            width = count - lower_count
            return lower_bound + (bound - lower_bound) * ((rank - lower_count) / width if width else 1.0)
        lower_bound, lower_count = bound, count
    return lower_bound


def camera_figures(samples: list[Any]) -> dict[str, dict[str, Any]]:
    """Counters, drop rate, source state and capture-to-publish latency per camera."""
    cameras: dict[str, dict[str, Any]] = defaultdict(lambda: {"frames_dropped": {}})
    buckets: dict[str, list[tuple[float, float]]] = defaultdict(list)
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for sample in samples:
        camera = sample.labels.get("camera")
        if camera is None:
            continue
        name = sample.name
        if name == "emotiond_frames_captured_total":
            cameras[camera]["frames_captured"] = int(sample.value)
        elif name == "emotiond_frames_processed_total":
            cameras[camera]["frames_processed"] = int(sample.value)
        elif name == "emotiond_faces_detected_total":
            cameras[camera]["faces_detected"] = int(sample.value)
        elif name == "emotiond_frames_dropped_total":
            cameras[camera]["frames_dropped"][sample.labels["reason"]] = int(sample.value)
        elif name == "emotiond_source_up":
            cameras[camera]["source_up"] = int(sample.value)
        elif name == "emotiond_capture_to_publish_seconds_bucket":
            buckets[camera].append((float(sample.labels["le"]), sample.value))
        elif name == "emotiond_capture_to_publish_seconds_sum":
            sums[camera] = sample.value
        elif name == "emotiond_capture_to_publish_seconds_count":
            counts[camera] = sample.value
    for camera, figures in cameras.items():
        captured = figures.get("frames_captured", 0)
        dropped = sum(figures["frames_dropped"].values())
        figures["drop_rate"] = round(dropped / captured, 4) if captured else 0.0
        latency: dict[str, float | None] = {}
        for quantile in QUANTILES:
            value = histogram_quantile(quantile, buckets.get(camera, []))
            latency[f"p{round(quantile * 100)}"] = None if value is None else round(value * 1000, 1)
        count = counts.get(camera, 0.0)
        latency["mean"] = round(sums.get(camera, 0.0) / count * 1000, 1) if count else None
        figures["latency_ms"] = latency
    return dict(cameras)


def recent_drop_rates(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Per camera, the share of the frames captured between two reads of ``camera_figures`` that were dropped
    (cameras with no new frame are left out): what a camera loses now, where ``drop_rate`` counts since start."""
    rates = {}
    for camera, figures in after.items():
        earlier = before.get(camera, {})
        captured = figures.get("frames_captured", 0) - earlier.get("frames_captured", 0)
        dropped = sum(figures["frames_dropped"].values()) - sum(earlier.get("frames_dropped", {}).values())
        if captured > 0:
            rates[camera] = round(min(1.0, max(0.0, dropped / captured)), 4)
    return rates
