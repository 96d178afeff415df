"""Prometheus metrics shared by every emotiond process, aggregated through prometheus-client's
multiprocess mode: each process writes its own files, the supervisor serves one /metrics.

``enable_multiprocess()`` must run before prometheus_client is first imported in a process, so metric
objects are built lazily by ``metrics()``.

Every label value known at start is declared here, and ``initialize()`` exports each labelled series at 0 before
the first event, so a dashboard shows 0 rather than "no data" and ``rate()`` has a series to work on (the
Prometheus instrumentation guide's "avoid missing metrics"). Error classes check their reasons against these
tuples, so a new reason cannot be counted without being declared.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ENV_DIR = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64, 128)
STAGES = ("decode", "detect", "classify", "publish")
DROP_REASONS = ("corrupt", "stale", "worker_lost", "shutdown")
# What a SourceError may carry: opening or reading a source failed.
SOURCE_FAILURE_REASONS = ("unsupported", "missing", "unreadable", "empty", "open_failed", "auth_failed",
                          "read_failed")
# emotiond_source_errors_total: SourceError's reasons, plus what the reader counts itself: a folder entry that is
# not an image (bad_file), a file whose decoder reported an error at its end (truncated), a live source
# that delivered no frame for [capture] stall_seconds (stalled).
SOURCE_ERROR_REASONS = (*SOURCE_FAILURE_REASONS, "bad_file", "truncated", "stalled")
# What a ProtocolError may carry (core/protocol.py).
PROTOCOL_ERROR_REASONS = ("bad_parts", "bad_topic", "bad_header", "bad_msgpack", "bad_version", "bad_kind",
                          "bad_shape", "bad_payload", "bad_frame", "oversized")
# emotiond_bad_messages_total: the socket that refused a message (capture's frames router, a worker's dealer)
# and why: a ProtocolError's reason, or a well-formed message of a kind that socket does not take.
BAD_MESSAGE_SOCKETS = ("frames", "worker")
BAD_MESSAGE_REASONS = (*PROTOCOL_ERROR_REASONS, "unexpected_kind")
DETECTION_KINDS = ("full", "tracked")


def enable_multiprocess(directory: Path, clean: bool = True) -> None:
    """Point this process (and children spawned after) at a fresh multiprocess metrics folder."""
    if clean and directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.environ[ENV_DIR] = str(directory)


@dataclass(frozen=True)
class Metrics:
    frames_captured: Any
    frames_processed: Any
    frames_dropped: Any
    faces_detected: Any
    emotions: Any
    stage_latency: Any
    capture_to_publish: Any
    batch_size: Any
    restarts: Any
    source_up: Any
    source_errors: Any
    bad_messages: Any
    detections: Any
    frames_requeued: Any


@functools.cache
def metrics() -> Metrics:
    from prometheus_client import Counter, Gauge, Histogram

    return Metrics(
        frames_captured=Counter("emotiond_frames_captured_total", "Frames read from a source.", ["camera"]),
        frames_processed=Counter("emotiond_frames_processed_total", "Frames whose result was published.",
                                 ["camera"]),
        frames_dropped=Counter("emotiond_frames_dropped_total", "Frames not processed, by reason.",
                               ["camera", "reason"]),
        faces_detected=Counter("emotiond_faces_detected_total", "Faces found.", ["camera"]),
        emotions=Counter("emotiond_emotions_total", "Faces classified, by top emotion.", ["camera", "emotion"]),
        stage_latency=Histogram("emotiond_stage_latency_seconds", "Time spent per pipeline stage per frame.",
                                ["stage"], buckets=LATENCY_BUCKETS),
        capture_to_publish=Histogram("emotiond_capture_to_publish_seconds",
                                     "From frame capture to result publication.", ["camera"],
                                     buckets=LATENCY_BUCKETS),
        batch_size=Histogram("emotiond_batch_size", "Faces per classifier call.", buckets=BATCH_BUCKETS),
        restarts=Counter("emotiond_process_restarts_total", "Child processes restarted by the supervisor.",
                         ["role"]),
        source_up=Gauge("emotiond_source_up", "1 while a source delivers frames, else 0.", ["camera"],
                        multiprocess_mode="livemax"),
        source_errors=Counter("emotiond_source_errors_total", "Source open/read failures, by reason.",
                              ["camera", "reason"]),
        bad_messages=Counter("emotiond_bad_messages_total", "Malformed messages dropped, by socket and reason.",
                             ["socket", "reason"]),
        detections=Counter("emotiond_detections_total", "Face detection passes, by kind (full scan or tracked "
                           "re-detection).", ["kind"]),
        frames_requeued=Counter("emotiond_frames_requeued_total", "Frames of a lost worker sent again to another "
                                "(file sources; live sources count them as dropped, reason worker_lost).",
                                ["camera"]),
    )


def initialize(cameras: Iterable[str], emotions: Iterable[str], roles: Iterable[str]) -> None:
    """Create every labelled series whose values are known at start, at 0 (a new child exports 0 at once).

    Runs in the supervisor after ``enable_multiprocess()`` and before any child starts, so the first scrape
    already has them. ``emotions`` are the loaded bundle's labels, ``roles`` the supervisor's children.
    """
    m = metrics()
    cameras, emotions, roles = tuple(cameras), tuple(emotions), tuple(roles)
    for camera in cameras:
        for counter in (m.frames_captured, m.frames_processed, m.faces_detected, m.frames_requeued):
            counter.labels(camera)
        m.capture_to_publish.labels(camera)
        m.source_up.labels(camera).set(0)
        for reason in DROP_REASONS:
            m.frames_dropped.labels(camera, reason)
        for reason in SOURCE_ERROR_REASONS:
            m.source_errors.labels(camera, reason)
        for emotion in emotions:
            m.emotions.labels(camera, emotion)
    for stage in STAGES:
        m.stage_latency.labels(stage)
    for role in roles:
        m.restarts.labels(role)
    for socket in BAD_MESSAGE_SOCKETS:
        for reason in BAD_MESSAGE_REASONS:
            m.bad_messages.labels(socket, reason)
    for kind in DETECTION_KINDS:
        m.detections.labels(kind)
    log.debug("metrics initialised for cameras %s, %d emotions, roles %s", cameras, len(emotions), roles)


def mark_process_dead(pid: int) -> None:
    if os.environ.get(ENV_DIR):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


METRICS_PORT_CHANGE = "--metrics-port (0: any free port) or [metrics] port"


def serve(host: str, port: int) -> int:
    """Serve /metrics for every process sharing the multiprocess folder; returns the bound port. A port that
    cannot be bound is a UsageError (one line, exit 2)."""
    from prometheus_client import CollectorRegistry

    from emotiond.core.listen import serve_metrics

    registry = CollectorRegistry()
    if os.environ.get(ENV_DIR):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:  # a single process: its own default registry
        from prometheus_client import REGISTRY

        registry = REGISTRY
    bound = serve_metrics("the daemon's /metrics", host, port, registry, METRICS_PORT_CHANGE)
    log.info("metrics on http://%s:%d/metrics", host, bound)
    return bound
