"""``emotiond log``: append every result to rotating JSONL or CSV files, record gaps, stop cleanly.

Shutdown on SIGTERM or SIGINT: the handler only sets a flag; the loop then drains every message already
queued in the socket, writes it together with the holes still open (as gaps), syncs and closes the file.
Nothing the logger has received is lost and no line is left half written.

The logger serves its own /metrics (``--metrics-port``) from a private single-process registry, so
it never mixes with the daemon's multiprocess metric files.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emotiond.clients import records
from emotiond.clients.gaps import Event, Gap, GapTracker, Restart
from emotiond.clients.log.files import RotatingLog
from emotiond.clients.privacy.retention import purge_log_files
from emotiond.clients.subscribe import Subscription
from emotiond.core import protocol
from emotiond.core.settings import Settings

log = logging.getLogger(__name__)
DRAIN_BATCH = 512
PURGE_EVERY_SECONDS = 600.0  # [privacy] retention_days is counted in whole days: ten minutes late is nothing


@dataclass(frozen=True)
class LoggerOptions:
    out: Path
    fmt: str = "jsonl"  # jsonl | csv
    faces_only: bool = False
    rotate_mb: float = 64.0
    fsync_seconds: float = 1.0
    cameras: tuple[str, ...] = ()
    reorder_window: int = 64
    gap_wait_seconds: float = 2.0


class LoggerMetrics:
    """Counters in a private registry (the process may inherit the daemon's multiprocess settings)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge

        self.registry = CollectorRegistry()
        self.results = Counter("emotiond_log_results_total", "Results written to the log.", ["camera"],
                               registry=self.registry)
        self.gaps = Counter("emotiond_log_gaps_total", "Runs of missed seq numbers recorded, per camera.",
                            ["camera"], registry=self.registry)
        self.missed = Counter("emotiond_log_missed_results_total", "Seq numbers never received, per camera.",
                              ["camera"], registry=self.registry)
        self.restarts = Counter("emotiond_log_seq_restarts_total", "Times a camera's seq started over.",
                                ["camera"], registry=self.registry)
        self.bad = Counter("emotiond_log_bad_messages_total", "Malformed messages skipped.", ["reason"],
                           registry=self.registry)
        self.bytes = Counter("emotiond_log_bytes_written_total", "Bytes appended to log files.",
                             registry=self.registry)
        self.rotations = Counter("emotiond_log_rotations_total", "Log files closed by rotation.",
                                 registry=self.registry)
        self.pending = Gauge("emotiond_log_pending_missing", "Seq numbers missing but maybe still in flight.",
                             registry=self.registry)

    def serve(self, host: str, port: int) -> int:
        from emotiond.core.listen import serve_metrics

        bound = serve_metrics("the logger's /metrics", host, port, self.registry, "--metrics-port (0: any free port)")
        log.info("log metrics on http://%s:%d/metrics", host, bound)
        return bound


class ResultLogger:
    def __init__(self, endpoint: str, settings: Settings, options: LoggerOptions,
                 metrics: LoggerMetrics | None = None):
        self.options = options
        self._endpoint = endpoint
        self._settings = settings
        self.metrics = metrics or LoggerMetrics()
        self.gaps = GapTracker(options.reorder_window, options.gap_wait_seconds)
        ext, header = ("csv", records.csv_header()) if options.fmt == "csv" else ("jsonl", "")
        self.file = RotatingLog(options.out, ext, rotate_bytes=max(1, int(options.rotate_mb * 1024 * 1024)),
                                fsync_seconds=options.fsync_seconds, header=header,
                                on_rotate=lambda _path: self.metrics.rotations.inc())
        self.stop_requested = threading.Event()
        self.received = 0
        self.written = 0

    def request_stop(self, *_: Any) -> None:
        self.stop_requested.set()

    def _count_bad(self, exc: protocol.ProtocolError) -> None:
        self.metrics.bad.labels(exc.reason).inc()

    def _wanted(self, camera: str) -> bool:
        return not self.options.cameras or camera in self.options.cameras

    def _count_events(self, events: Iterable[Event]) -> list[Event]:
        events = list(events)
        for event in events:
            if isinstance(event, Gap):
                self.metrics.gaps.labels(event.camera).inc()
                self.metrics.missed.labels(event.camera).inc(event.missed)
                log.warning("camera %s: missed seq %d..%d (%d results)", event.camera, event.first_seq,
                            event.last_seq, event.missed)
            elif isinstance(event, Restart):
                self.metrics.restarts.labels(event.camera).inc()
                log.info("camera %s: seq restarted (%d -> %d)", event.camera, event.from_seq, event.to_seq)
        return events

    def _render(self, items: Iterable[records.Record]) -> str:
        if self.options.fmt == "csv":
            return records.csv_text(row for item in items for row in records.csv_rows(item, self.options.faces_only))
        return "".join(records.json_line(item) for item in items)

    def handle(self, messages: Iterable[protocol.Message], now: float | None = None) -> None:
        """Write one batch: results (and the gaps they reveal), status events (end of stream settles a camera's
        gaps, up to its last frame), tracks ended when a camera stopped."""
        now = time.monotonic() if now is None else now
        wall = time.time()
        batch: list[records.Record] = []
        for message in messages:
            if isinstance(message, protocol.Result) and self._wanted(message.camera):
                self.received += 1
                batch += self._count_events(self.gaps.see(message.camera, message.seq, now, wall))
                if self.options.faces_only and not message.faces:
                    continue
                batch.append(message)
                self.metrics.results.labels(message.camera).inc()
            elif isinstance(message, protocol.Status) and self._wanted(message.camera):
                if message.state == "eos":
                    batch += self._count_events(self.gaps.finish(message.camera, message.frames, wall))
                batch.append(message)
            elif isinstance(message, protocol.TracksEnded | protocol.Aggregate) and self._wanted(message.camera):
                batch.append(message)
        batch += self._count_events(self.gaps.expire(now))
        self._write(batch)

    def _write(self, batch: list[records.Record]) -> None:
        if not batch:
            return
        text = self._render(batch)
        before = self.file.bytes_written
        self.file.write(text)
        self.metrics.bytes.inc(self.file.bytes_written - before)
        self.written += sum(isinstance(item, protocol.Result) for item in batch)
        self.metrics.pending.set(self.gaps.pending())

    def purge_expired(self) -> list[Path]:
        """Delete the day files ``[privacy] retention_days`` no longer allows (none without it)."""
        days = self._settings.privacy.retention_days
        return [] if days is None else purge_log_files(self.options.out, days, time.time())

    def run(self) -> int:
        subscription = Subscription(self._endpoint, self.options.cameras,
                                    kinds=("result", "status", "tracks", "aggregate"),
                                    settings=self._settings, on_bad=self._count_bad)
        log.info("logging results from %s into %s (%s)", self._endpoint, self.options.out, self.options.fmt)
        next_purge = 0.0
        try:
            while not self.stop_requested.is_set():
                if time.monotonic() >= next_purge:
                    self.purge_expired()
                    next_purge = time.monotonic() + PURGE_EVERY_SECONDS
                messages = subscription.receive(200, DRAIN_BATCH)
                self.handle(messages)
                if not messages:
                    self.file.sync_if_due()
            # Stop requested: everything already queued in the socket has been received; keep it.
            while messages := subscription.receive(0, DRAIN_BATCH):
                self.handle(messages)
        finally:
            subscription.close()
            self._write(self._count_events(self.gaps.close()))
            self.file.close()
            log.info("log closed: received %d results, wrote %d", self.received, self.written)
        return 0


def install_signal_handlers(logger: ResultLogger) -> None:
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, logger.request_stop)
