"""The capture process: reader threads (capture.readers) fill one slot per source; one loop owns every socket,
hands frames to workers that have credit (capture.dispatch), and announces each camera's end of stream.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from typing import Any

import zmq

from emotiond.capture.dispatch import Dispatcher
from emotiond.capture.opencv_log import route_opencv_output
from emotiond.capture.readers import WAKE_ENDPOINT, Captured, SourceReader
from emotiond.core import bus, protocol
from emotiond.core.lifecycle import Lifecycle
from emotiond.core.metrics import metrics
from emotiond.core.settings import Settings

log = logging.getLogger(__name__)
SETTLE_SECONDS = 0.3  # lets the last results leave the workers before end-of-stream is announced
DRAIN_SECONDS = 2.5  # on SIGTERM, how long frames in flight may take to finish


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
        self._last_dispatched: dict[str, int] = {}  # camera -> seq of the newest frame handed to a worker
        self._announced: set[str] = set()

    def _start_seq(self, index: int) -> int:
        return int(self._progress[index]) if self._progress is not None else 0

    def _lost(self, camera: str, seq: int, frame: Captured) -> None:
        if self._readers[camera].live:
            self._m.frames_dropped.labels(camera, "worker_lost").inc()
        else:
            log.info("camera %s: frame %d of a lost worker is sent again", camera, seq)
            self._m.frames_requeued.labels(camera).inc()
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
                for reader in self._readers.values():
                    reader.watch(now)
                self._dispatcher.expire(now)
                if drain_deadline is None:
                    self._dispatch(router)
                self._announce_finished(now)
                self._publish_statuses(publisher)
                if drain_deadline is not None:
                    unfinished = sum(len(s.inflight) for s in self._dispatcher.workers.values())
                    if not unfinished or now > drain_deadline:
                        log.info("capture stopped; frames in flight unfinished: %d", unfinished)
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
        last = ", ".join(f"{camera} {seq}" for camera, seq in sorted(self._last_dispatched.items())) or "none"
        log.info("stopping capture; finishing frames in flight (last frame dispatched: %s)", last)
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
            self._last_dispatched[camera] = max(self._last_dispatched.get(camera, -1), frame.header.seq)
            if self._progress is not None and not retry:
                index = self._index[camera]
                self._progress[index] = max(self._progress[index], frame.header.seq + 1)

    def _publish_statuses(self, publisher: zmq.Socket) -> None:
        while True:
            try:
                status = self._statuses.get_nowait()
            except queue.Empty:
                return
            try:
                publisher.send_multipart(protocol.encode_status(status), zmq.NOBLOCK)
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
    route_opencv_output(settings.logging.opencv)
    code = CaptureService(settings, life, progress).run()
    raise SystemExit(code)
