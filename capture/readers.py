"""Source readers: one thread per source fills a FrameSlot that the capture loop empties.

Live sources keep only the newest frame (older unsent ones are dropped and counted); file sources read ahead
into a bounded queue and block when it is full, so no frame is lost. Live sources that fail are reopened with
exponential backoff, and every change is reported as a status event.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import zmq

from emotiond.capture.sources import open_source
from emotiond.core import bus, protocol
from emotiond.core.metrics import metrics
from emotiond.core.settings import Settings, SourceSettings
from emotiond.core.sources import SourceError, is_live_kind, kind_of, source_is_live

log = logging.getLogger(__name__)
WAKE_ENDPOINT = "inproc://capture-wake"


@dataclass(frozen=True, slots=True)
class Captured:
    header: protocol.FrameHeader
    pixels: np.ndarray


class FrameSlot:
    """Live: holds the newest frame only. File: a bounded FIFO whose put blocks (backpressure)."""

    def __init__(self, live: bool, capacity: int):
        self.live = live
        self._items: deque[Captured] = deque()
        self._capacity = 1 if live else capacity
        self._cond = threading.Condition()
        self.finished = False

    def put(self, item: Captured, stopping: threading.Event) -> Captured | None:
        """Store a frame; returns the frame it displaced (live only)."""
        with self._cond:
            if self.live:
                displaced = self._items.popleft() if self._items else None
                self._items.append(item)
                return displaced
            while len(self._items) >= self._capacity and not stopping.is_set():
                self._cond.wait(0.2)
            self._items.append(item)
            return None

    def take(self) -> Captured | None:
        with self._cond:
            item = self._items.popleft() if self._items else None
            self._cond.notify()
            return item

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> int:
        with self._cond:
            dropped = len(self._items)
            self._items.clear()
            self._cond.notify_all()
            return dropped


class SourceReader(threading.Thread):
    """Reads one source into its slot; reconnects live sources with exponential backoff."""

    def __init__(self, source: SourceSettings, settings: Settings, start_seq: int, statuses: queue.Queue,
                 stopping: threading.Event):
        super().__init__(name=f"reader-{source.name}", daemon=True)
        self.source = source
        self.kind = kind_of(source.url)
        self.live = source_is_live(source)
        self.slot = FrameSlot(self.live, settings.capture.file_queue_frames)
        self.next_seq = start_seq
        self._settings = settings
        self._statuses = statuses
        self._stopping = stopping
        self._m = metrics()

    def _status(self, state: str, message: str) -> None:
        self._statuses.put(protocol.Status(self.source.name, state, message, time.time(), self.next_seq))

    def _open(self, start: int):
        camera = self.source.name
        return open_source(
            self.source.url, start=start, fps=self.source.fps,
            on_bad_file=lambda path, why: self._m.source_errors.labels(camera, "bad_file").inc(),
            on_bad_frame=lambda: self._m.frames_dropped.labels(camera, "corrupt").inc(),
        )

    def run(self) -> None:
        camera = self.source.name
        wake = bus.context().socket(zmq.PUSH)
        wake.setsockopt(zmq.LINGER, 0)
        wake.setsockopt(zmq.SNDHWM, 4)
        wake.connect(WAKE_ENDPOINT)
        backoff = self._settings.capture.reconnect_initial_seconds
        start = 0 if is_live_kind(self.kind) else self.next_seq
        try:
            while not self._stopping.is_set():
                try:
                    source = self._open(start)
                except SourceError as exc:
                    self._m.source_errors.labels(camera, exc.reason).inc()
                    self._m.source_up.labels(camera).set(0)
                    self._status("down", str(exc))
                    if not is_live_kind(self.kind):
                        log.error("source %s: %s", camera, exc)
                        break
                    log.warning("source %s: %s; retrying in %.1fs", camera, exc, backoff)
                    self._stopping.wait(backoff)
                    backoff = min(backoff * 2, self._settings.capture.reconnect_max_seconds)
                    continue
                self._m.source_up.labels(camera).set(1)
                self._status("up", f"reading {self.source.url}")
                backoff = self._settings.capture.reconnect_initial_seconds
                ended_cleanly = self._pump(source, wake)
                source.close()
                if source.error_note:
                    self._m.source_errors.labels(camera, "truncated").inc()
                    self._status("error", source.error_note)
                if self._stopping.is_set():
                    break
                if not ended_cleanly:
                    self._m.source_up.labels(camera).set(0)
                    if not is_live_kind(self.kind):
                        break  # a file that fails mid-read is finished: what was readable has been sent
                    continue  # live source failed: reconnect at once, back off if opening fails
                if not self.source.loop:
                    break
                start = 0
        finally:
            self._m.source_up.labels(camera).set(0)
            self.slot.finished = True
            _notify(wake)
            wake.close(linger=0)

    def _pump(self, source, wake: zmq.Socket) -> bool:
        """Read until the end (True) or a live failure (False)."""
        camera = self.source.name
        pace = 1.0 / source.fps if self.source.realtime and source.fps > 0 else 0.0
        next_due = time.monotonic()
        while not self._stopping.is_set():
            try:
                pixels = source.read()
            except SourceError as exc:
                log.warning("source %s: %s", camera, exc)
                self._m.source_errors.labels(camera, exc.reason).inc()
                self._status("down", str(exc))
                return False
            if pixels is None:
                return True
            header = protocol.FrameHeader(camera, self.next_seq, time.time(), _shape(pixels))
            self.next_seq += 1
            self._m.frames_captured.labels(camera).inc()
            displaced = self.slot.put(Captured(header, pixels), self._stopping)
            if displaced is not None:
                self._m.frames_dropped.labels(camera, "stale").inc()
            _notify(wake)
            if pace:
                next_due += pace
                delay = next_due - time.monotonic()
                if delay > 0:
                    self._stopping.wait(delay)
                else:
                    next_due = time.monotonic()
        return True


def _shape(pixels: np.ndarray) -> tuple[int, int, int]:
    return (pixels.shape[0], pixels.shape[1], pixels.shape[2] if pixels.ndim == 3 else 1)


def _notify(wake: zmq.Socket) -> None:
    with contextlib.suppress(zmq.Again):
        wake.send(b"", zmq.NOBLOCK)
