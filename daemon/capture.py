"""The capture process: one reader thread per source, one loop that hands frames to workers.

Live sources keep only the newest frame (older unsent ones are dropped and counted); file sources read
ahead into a bounded queue and block when it is full, so no frame is lost. The main loop owns every socket.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
import zmq

from daemon import bus, protocol
from daemon.dispatch import Dispatcher
from daemon.lifecycle import Lifecycle
from daemon.metrics import metrics
from daemon.settings import Settings, SourceSettings
from daemon.sources import SourceError, is_live_kind, kind_of, open_source

log = logging.getLogger(__name__)
WAKE_ENDPOINT = "inproc://capture-wake"
SETTLE_SECONDS = 0.3  # lets the last results leave the workers before end-of-stream is announced
DRAIN_SECONDS = 2.5  # on SIGTERM, how long frames in flight may take to finish


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
        mode = source.mode if source.mode != "auto" else ("live" if is_live_kind(self.kind) else "file")
        self.live = mode == "live" or source.realtime
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


def _drain(sock: zmq.Socket) -> None:
    while True:
        try:
            sock.recv(zmq.NOBLOCK)
        except zmq.Again:
            return


class CaptureService:
    """Owns the frames ROUTER and the status publisher; runs the dispatch loop until all sources end."""

    def __init__(self, settings: Settings, life: Lifecycle, progress: Any | None = None):
        if not settings.sources:
            raise ValueError("no sources configured")
        self._settings = settings
        self._life = life
        self._progress = progress  # multiprocessing.Array('q'): next seq per source, survives restarts
        self._m = metrics()
        self._stopping = threading.Event()
        self._statuses: queue.Queue[protocol.Status] = queue.Queue()
        self._dispatcher: Dispatcher[Captured] = Dispatcher(settings.capture.worker_timeout_seconds, self._lost,
                                                            affinity=settings.tracking.enabled,
                                                            max_credits=settings.capture.credits_per_worker)
        self._readers = {s.name: SourceReader(s, settings, self._start_seq(i), self._statuses, self._stopping)
                         for i, s in enumerate(settings.sources)}
        self._index = {s.name: i for i, s in enumerate(settings.sources)}
        self._finished: dict[str, float] = {}  # camera -> when its end-of-stream is due
        self._announced: set[str] = set()

    def _start_seq(self, index: int) -> int:
        return int(self._progress[index]) if self._progress is not None else 0

    def _lost(self, camera: str, seq: int, frame: Captured) -> None:
        if self._readers[camera].live:
            self._m.frames_dropped.labels(camera, "worker_lost").inc()
        else:
            self._dispatcher.requeue(camera, seq, frame)

    def run(self) -> int:
        ctx = bus.context()
        wake = ctx.socket(zmq.PULL)
        wake.setsockopt(zmq.LINGER, 0)
        wake.bind(WAKE_ENDPOINT)
        router = bus.frames_router(self._settings)
        publisher = bus.results_publisher(self._settings)
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        poller.register(wake, zmq.POLLIN)
        for name, reader in self._readers.items():
            self._dispatcher.add_camera(name)
            reader.start()
        drain_deadline: float | None = None
        try:
            while True:
                self._life.tick()
                if drain_deadline is None and self._life.should_stop():
                    drain_deadline = self._begin_drain()
                events = dict(poller.poll(200))
                if router in events:
                    self._receive(router)
                if wake in events:
                    _drain(wake)
                now = time.monotonic()
                self._dispatcher.expire(now)
                if drain_deadline is None:
                    self._dispatch(router)
                self._announce_finished(now)
                self._publish_statuses(publisher)
                if drain_deadline is not None:
                    if not any(s.inflight for s in self._dispatcher.workers.values()) or now > drain_deadline:
                        break
                elif len(self._announced) == len(self._readers):
                    break
        finally:
            self._stopping.set()
            for reader in self._readers.values():
                reader.slot.clear()
                reader.join(timeout=2.0)
            self._publish_statuses(publisher)
            publisher.close(linger=500)  # let end-of-stream statuses reach the proxy
            for sock in (router, wake):
                sock.close(linger=0)
        return 0

    def _begin_drain(self) -> float:
        log.info("stopping capture; finishing frames in flight")
        self._stopping.set()
        for name, reader in self._readers.items():
            dropped = reader.slot.clear()
            if dropped:
                self._m.frames_dropped.labels(name, "shutdown").inc(dropped)
        return time.monotonic() + DRAIN_SECONDS

    def _receive(self, router: zmq.Socket) -> None:
        while True:
            try:
                parts = router.recv_multipart(zmq.NOBLOCK, copy=True)
            except zmq.Again:
                return
            if len(parts) < 2:
                self._m.bad_messages.labels("frames", "bad_parts").inc()
                continue
            worker, body = parts[0], parts[1:]
            try:
                message = protocol.decode(body, self._settings.bus.max_frame_pixels)
            except protocol.ProtocolError as exc:
                self._m.bad_messages.labels("frames", exc.reason).inc()
                log.debug("bad message from worker: %s", exc)
                continue
            if not isinstance(message, protocol.Control):
                self._m.bad_messages.labels("frames", "unexpected_kind").inc()
                continue
            now = time.monotonic()
            if message.kind == "ready":
                self._dispatcher.ready(worker, message.pid, message.credits, now)
            elif message.kind == "heartbeat":
                self._dispatcher.heartbeat(worker, message.pid, message.credits, now)
            else:
                self._dispatcher.done(worker, message.camera, message.seq, now)

    def _dispatch(self, router: zmq.Socket) -> None:
        while True:
            picked = self._dispatcher.pick(lambda name: len(self._readers[name].slot) > 0)
            if picked is None:
                return
            camera, worker = picked
            retry = self._dispatcher.take_retry(camera)
            frame = retry[1] if retry else self._readers[camera].slot.take()
            if frame is None:
                continue
            header = frame.header
            if self._settings.bus.frame_encoding != header.encoding:
                header = dataclasses.replace(header, encoding=self._settings.bus.frame_encoding)
            parts = protocol.encode_frame(header, frame.pixels, self._settings.bus.jpeg_quality)
            try:
                router.send_multipart([worker, *parts], zmq.NOBLOCK, copy=False)
            except (zmq.Again, zmq.ZMQError) as exc:
                log.warning("worker %s unreachable (%s); re-routing its frames", worker.decode(errors="replace"), exc)
                self._dispatcher.unreachable(worker)
                self._lost(camera, frame.header.seq, frame)
                continue
            self._dispatcher.assign(worker, camera, frame.header.seq, frame)
            if self._progress is not None and not retry:
                index = self._index[camera]
                self._progress[index] = max(self._progress[index], frame.header.seq + 1)

    def _publish_statuses(self, publisher: zmq.Socket) -> int:
        sent = 0
        while True:
            try:
                status = self._statuses.get_nowait()
            except queue.Empty:
                return sent
            try:
                publisher.send_multipart(protocol.encode_status(status), zmq.NOBLOCK)
                sent += 1
            except zmq.ZMQError as exc:
                log.warning("status for %s not published: %s", status.camera, exc)

    def _announce_finished(self, now: float) -> None:
        """End-of-stream goes out once a camera has nothing left anywhere, after a short settle delay."""
        for name, reader in self._readers.items():
            if name in self._announced:
                continue
            if name in self._finished:
                if now >= self._finished[name]:
                    self._announced.add(name)
                    self._statuses.put(protocol.Status(name, "eos", "end of stream", time.time(), reader.next_seq))
                continue
            if not reader.slot.finished or len(reader.slot):
                continue
            if self._dispatcher.retry_pending(name) or self._dispatcher.inflight(name):
                continue
            self._finished[name] = now + SETTLE_SECONDS


def main(settings_data: dict[str, Any], heartbeat: Any = None, progress: Any = None) -> None:
    """Process entry point (spawned by the supervisor, or run alone by ``emotiond capture``)."""
    settings = Settings.model_validate(settings_data)
    life = Lifecycle("capture", heartbeat, settings.logging.level)
    code = CaptureService(settings, life, progress).run()
    raise SystemExit(code)
