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

from emotiond.capture.masks import PrivacyMasks
from emotiond.capture.sources import open_source
from emotiond.core import bus, protocol
from emotiond.core.metrics import metrics
from emotiond.core.redact import redact
from emotiond.core.settings import Settings, SourceSettings
from emotiond.core.sources import (
    SourceError,
    connect_url,
    ffmpeg_capture_options,
    is_live_kind,
    kind_of,
    source_is_live,
)

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

    def oldest_at(self) -> float | None:
        """When the oldest waiting frame was captured (wall clock), or None when there is none."""
        with self._cond:
            return self._items[0].header.captured_at if self._items else None

    def clear(self) -> int:
        with self._cond:
            dropped = len(self._items)
            self._items.clear()
            self._cond.notify_all()
            return dropped


class SourceReader:
    """Reads one source into its slot on a thread of its own; reopens live sources with exponential backoff.

    A live source that delivers no frame for ``[capture] stall_seconds`` is marked down and reopened on a new
    thread (``watch``, called by the capture loop), whatever its decoder does: a read blocked inside FFmpeg
    cannot be interrupted, so the old thread is superseded instead, and closes its source and ends whenever
    that read returns, without touching the slot again.
    """

    def __init__(self, source: SourceSettings, settings: Settings, start_seq: int, statuses: queue.Queue,
                 stopping: threading.Event):
        self.source = source
        self.kind = kind_of(source.url)
        self.live = source_is_live(source)
        self.slot = FrameSlot(self.live, settings.capture.file_queue_frames)
        self._masks = PrivacyMasks(source.masks or ())
        self.next_seq = start_seq
        self._settings = settings
        self._statuses = statuses
        self._stopping = stopping
        self._m = metrics()
        self._lock = threading.Lock()  # generation, state and next_seq, shared with a superseded thread
        self._generation = 0
        self._state = "starting"
        self._message = ""
        self._last_frame = time.monotonic()
        self._backoff = settings.capture.reconnect_initial_seconds
        self._thread: threading.Thread | None = None
        self.stalls = 0

    # ------------------------------------------------------------ threads
    def start(self) -> None:
        self._spawn(delay=0.0)

    def _spawn(self, delay: float) -> None:
        self._thread = threading.Thread(target=self._run, args=(self._generation, delay),
                                        name=f"reader-{self.source.name}-{self._generation}", daemon=True)
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _current(self, generation: int) -> bool:
        return generation == self._generation

    def watch(self, now: float) -> None:
        """Called by the capture loop: a live source that is up but silent past ``stall_seconds`` is down."""
        stall = self._settings.capture.stall_seconds
        with self._lock:
            if not self.live or self._state != "up" or now - self._last_frame <= stall:
                return
            silent = now - self._last_frame
            self._generation += 1
            self._state, self._message = "down", "stalled"
            self.stalls += 1
            delay = self._backoff
            self._backoff = min(self._backoff * 2, self._settings.capture.reconnect_max_seconds)
        camera = self.source.name
        log.warning("source %s: no frame for %.1f s (stalled); reopening in %.1f s", camera, silent, delay)
        self._m.source_errors.labels(camera, "stalled").inc()
        self._m.source_up.labels(camera).set(0)
        self._status("down", f"no frame for {silent:.1f} s (stalled); reopening")
        self._spawn(delay)

    # ------------------------------------------------------------ status
    def _status(self, state: str, message: str) -> None:
        self._statuses.put(protocol.Status(self.source.name, state, redact(message), time.time(), self.next_seq))

    def _set_state(self, generation: int, state: str, message: str) -> bool:
        """Publish a state change of the current thread; a superseded thread says nothing (False). A retry that
        fails the same way again is counted, not published again: subscribers see one status per change."""
        with self._lock:
            if not self._current(generation):
                return False
            repeated = (state, message) == (self._state, self._message)
            self._state, self._message = state, message
            if state == "up":
                self._last_frame = time.monotonic()
        self._m.source_up.labels(self.source.name).set(1 if state == "up" else 0)
        if not repeated:
            self._status(state, message)
        return True

    def _open(self, start: int):
        camera = self.source.name
        return open_source(
            connect_url(self.source), start=start, fps=self.source.fps,
            on_bad_file=lambda path, why: self._m.source_errors.labels(camera, "bad_file").inc(),
            on_bad_frame=lambda: self._m.frames_dropped.labels(camera, "corrupt").inc(),
            ffmpeg_options=ffmpeg_capture_options(self.source),
            read_timeout_ms=int((self._settings.capture.stall_seconds + 2.0) * 1000),
        )

    # ------------------------------------------------------------ reading
    def _run(self, generation: int, delay: float) -> None:
        camera = self.source.name
        wake = bus.context().socket(zmq.PUSH)
        wake.setsockopt(zmq.LINGER, 0)
        wake.setsockopt(zmq.SNDHWM, 4)
        wake.connect(WAKE_ENDPOINT)
        start = 0 if is_live_kind(self.kind) else self.next_seq
        if delay:
            self._stopping.wait(delay)
        try:
            while not self._stopping.is_set() and self._current(generation):
                try:
                    source = self._open(start)
                except SourceError as exc:
                    self._m.source_errors.labels(camera, exc.reason).inc()
                    with self._lock:
                        repeated = (self._state, self._message) == ("down", str(exc))
                    if not self._set_state(generation, "down", str(exc)):
                        return
                    if not is_live_kind(self.kind):
                        log.error("source %s: %s", camera, redact(str(exc)))
                        break
                    with self._lock:
                        delay, self._backoff = self._backoff, min(
                            self._backoff * 2, self._settings.capture.reconnect_max_seconds)
                    # Once per change of state: a camera that stays away is retried quietly (DEBUG) with backoff.
                    log.log(logging.DEBUG if repeated else logging.WARNING,
                            "source %s: %s; retrying in %.1fs, with backoff (said again when its state changes)",
                            camera, redact(str(exc)), delay)
                    self._stopping.wait(delay)
                    continue
                if not self._set_state(generation, "up", f"reading {self.source.url}"):
                    source.close()
                    return
                ended_cleanly = self._pump(source, wake, generation)
                source.close()
                if not self._current(generation):
                    return
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
            if self._current(generation):
                self._finish(wake)
        finally:
            wake.close(linger=0)

    def _finish(self, wake: zmq.Socket) -> None:
        self._m.source_up.labels(self.source.name).set(0)
        self.slot.finished = True
        _notify(wake)

    def _pump(self, source, wake: zmq.Socket, generation: int) -> bool:
        """Read until the end (True), a live failure (False) or being superseded after a stall."""
        camera = self.source.name
        pace = 1.0 / source.fps if self.source.realtime and source.fps > 0 else 0.0
        next_due = time.monotonic()
        while not self._stopping.is_set():
            try:
                pixels = source.read()
            except SourceError as exc:
                log.warning("source %s: %s", camera, redact(str(exc)))
                self._m.source_errors.labels(camera, exc.reason).inc()
                self._set_state(generation, "down", str(exc))
                return False
            if pixels is None:
                return True
            if self._masks:
                pixels = self._masks.apply(pixels)  # before anything else sees the frame
            with self._lock:
                if not self._current(generation):
                    return False
                header = protocol.FrameHeader(camera, self.next_seq, time.time(), _shape(pixels))
                self.next_seq += 1
                self._last_frame = time.monotonic()
                self._backoff = self._settings.capture.reconnect_initial_seconds
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
