"""The capture process: reader threads (capture.readers) fill one slot per source; one loop owns every socket,
hands frames to workers that have credit (capture.dispatch), and announces each camera's end of stream.

It also says when a camera's tracks must end, to the worker that holds them (``end``): at end of stream (and waits
for the worker's ``ended`` before announcing ``eos``, so a reader that stops at ``eos`` has seen every track end),
when a live source stays down past ``[tracking] down_grace_seconds``, and when the worker that held them is lost
(the ids it last reported go to the camera's next worker, which announces them). On SIGTERM, capture lets the frames
in flight finish and asks for the same, with reason ``stop``, for the cameras whose readers have ended by then; each
worker ends whatever it still holds as it stops.
"""

from __future__ import annotations

import dataclasses
import logging
import os
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
END_ACK_SECONDS = 5.0  # how long end-of-stream waits for the worker to confirm the camera's tracks ended


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
                                                            max_credits=settings.capture.credits_per_worker,
                                                            fair=settings.capture.fair_share)
        self._readers = {s.name: SourceReader(s, settings, self._start_seq(i), self._statuses, self._stopping)
                         for i, s in enumerate(settings.sources)}
        self._index = {s.name: i for i, s in enumerate(settings.sources)}
        self._finished: dict[str, float] = {}  # camera -> when its end-of-stream is due
        self._last_dispatched: dict[str, int] = {}  # camera -> seq of the newest frame handed to a worker
        self._announced: set[str] = set()
        self._track_holders: dict[str, tuple[bytes, int, int, tuple[int, ...]]] = {}  # camera -> worker, pid, seq, ids
        self._orphans: dict[str, tuple[int, tuple[int, ...]]] = {}  # camera -> seq, ids of a lost worker's tracks
        self._end_waits: dict[str, float] = {}  # camera -> when end-of-stream stops waiting for ``ended``
        self._down_since: dict[str, float] = {}  # live camera -> since when it is down
        self._down_ended: set[str] = set()  # live cameras down past the grace period, their tracks ended
        self._counted: dict[str, int] = {}  # camera -> its reader's next_seq when frames were last counted

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
            self._dispatcher.add_camera(name, live=reader.live)
            self._counted[name] = reader.next_seq
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
                self._count_captured(now)
                self._dispatcher.rebalance(now)
                self._end_tracks_of_moved_cameras(router)
                if drain_deadline is None:
                    self._dispatch(router)
                if self._settings.tracking.enabled:
                    self._end_lost_tracks(router)
                    self._end_tracks_of_down_cameras(router, now)
                self._announce_finished(router, now)
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
            elif message.kind == "ended":
                if self._end_waits.pop(message.camera, None) is not None:
                    self._finished[message.camera] = now + SETTLE_SECONDS
            elif message.kind == "done":
                self._dispatcher.done(worker, message.camera, message.seq, now, message.cost_ms)
                self._note_tracks(router, worker, message)
            else:
                self._m.bad_messages.labels("frames", "unexpected_kind").inc()

    # ------------------------------------------------------------ ending tracks
    def _note_tracks(self, router: zmq.Socket, worker: bytes, done: protocol.Control) -> None:
        """Remember which worker holds a camera's tracks, and their ids, from its acknowledgements. A worker the
        camera has moved away from (its frames were in flight at the move, perhaps before it had said it held
        tracks) is asked to end the tracks it still holds, so none stays open."""
        state = self._dispatcher.workers.get(worker)
        if not done.camera or state is None or state.pid != done.pid:
            return
        placed = self._dispatcher.placed_on(done.camera)
        if placed is not None and placed != worker:
            if done.tracks and self._settings.tracking.enabled:
                self._send_end(router, worker, done.camera, "moved")
            return
        held = self._track_holders.get(done.camera)
        if held is None or held[0] != worker or done.seq >= held[2]:
            self._track_holders[done.camera] = (worker, done.pid, done.seq, done.tracks)

    def _holder(self, camera: str) -> bytes | None:
        held = self._track_holders.get(camera)
        if held is None:
            return None
        state = self._dispatcher.workers.get(held[0])
        return held[0] if state is not None and state.pid == held[1] else None

    def _send_end(self, router: zmq.Socket, worker: bytes, camera: str, reason: str, seq: int = -1,
                  tracks: tuple[int, ...] = ()) -> bool:
        message = protocol.Control("end", "capture", os.getpid(), camera=camera, seq=seq, tracks=tracks,
                                   reason=reason)
        try:
            router.send_multipart([worker, *protocol.encode_control(message)], zmq.NOBLOCK)
        except zmq.ZMQError as exc:
            log.warning("camera %s: could not ask worker %s to end its tracks: %s", camera,
                        worker.decode(errors="replace"), exc)
            return False
        return True

    def _end_lost_tracks(self, router: zmq.Socket) -> None:
        """The tracks of a worker that was lost end through the camera's next worker."""
        for camera, (worker, _pid, seq, tracks) in list(self._track_holders.items()):
            if tracks and self._holder(camera) is None:
                log.info("camera %s: worker %s holding tracks %s was lost", camera, worker.decode(errors="replace"),
                         list(tracks))
                self._orphans[camera] = (seq, tracks)
                del self._track_holders[camera]
        for camera, (seq, tracks) in list(self._orphans.items()):
            heir = self._dispatcher.owner(camera)
            if heir is not None and self._send_end(router, heir, camera, "worker_lost", seq, tracks):
                del self._orphans[camera]

    def _end_tracks_of_down_cameras(self, router: zmq.Socket, now: float) -> None:
        grace = self._settings.tracking.down_grace_seconds
        for camera, since in self._down_since.items():
            if camera in self._down_ended or now - since < grace:
                continue
            holder = self._holder(camera)
            if holder is None or self._send_end(router, holder, camera, "down"):
                self._down_ended.add(camera)

    def _note_status(self, status: protocol.Status) -> None:
        """Live cameras going down and coming back, for the grace period of their tracks."""
        if not self._readers[status.camera].live:
            return
        if status.state == "down":
            self._down_since.setdefault(status.camera, time.monotonic())
        elif status.state == "up":
            self._down_since.pop(status.camera, None)
            self._down_ended.discard(status.camera)

    def _end_tracks_of_moved_cameras(self, router: zmq.Socket) -> None:
        """A camera moved to another worker (load balancing) starts new tracks there: the worker it left ends
        the ones it held, so no track is left open."""
        for camera, previous in self._dispatcher.take_moves():
            placed = self._dispatcher.placed_on(camera) or b"?"
            log.info("camera %s moved from worker %s to %s to balance their measured loads", camera,
                     previous.decode(errors="replace"), placed.decode(errors="replace"))
            if self._settings.tracking.enabled and self._holder(camera) == previous:
                self._send_end(router, previous, camera, "moved")

    def _count_captured(self, now: float) -> None:
        """Tell the dispatcher how many frames each camera read since last time (its served share's base)."""
        for name, reader in self._readers.items():
            read = reader.next_seq
            self._dispatcher.captured(name, read - self._counted[name], now)
            self._counted[name] = read

    def _dispatch(self, router: zmq.Socket) -> None:
        while True:
            picked = self._dispatcher.pick(lambda name: self._readers[name].slot.oldest_at(), time.monotonic())
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
            self._dispatcher.assign(worker, camera, frame.header.seq, frame, time.monotonic())
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
            self._note_status(status)
            try:
                publisher.send_multipart(protocol.encode_status(status), zmq.NOBLOCK)
            except zmq.ZMQError as exc:
                log.warning("status for %s not published: %s", status.camera, exc)

    def _announce_finished(self, router: zmq.Socket, now: float) -> None:
        """End-of-stream goes out once a camera has nothing left anywhere and its tracks have ended, after a short
        settle delay."""
        for name, reader in self._readers.items():
            if name in self._announced:
                continue
            if name in self._finished:
                if now >= self._finished[name]:
                    self._announced.add(name)
                    self._statuses.put(protocol.Status(name, "eos", "end of stream", time.time(), reader.next_seq))
                continue
            if name in self._end_waits:
                if now >= self._end_waits.pop(name):
                    log.warning("camera %s: its worker did not confirm the end of its tracks within %.0f s", name,
                                END_ACK_SECONDS)
                    self._finished[name] = now + SETTLE_SECONDS
                continue
            if not reader.slot.finished or len(reader.slot):
                continue
            if self._dispatcher.retry_pending(name) or self._dispatcher.inflight(name) or name in self._orphans:
                continue
            holder = self._holder(name) if self._settings.tracking.enabled else None
            reason = "stop" if self._stopping.is_set() else "eos"  # readers also finish when capture is stopping
            if holder is not None and self._send_end(router, holder, name, reason):
                self._end_waits[name] = now + END_ACK_SECONDS
            else:
                self._finished[name] = now + SETTLE_SECONDS


def main(settings_data: dict[str, Any], heartbeat: Any = None, progress: Any = None) -> None:
    """Process entry point (spawned by the supervisor, or run alone by ``emotiond capture``)."""
    settings = Settings.model_validate(settings_data)
    life = Lifecycle("capture", heartbeat, settings.logging.level)
    route_opencv_output(settings.logging.opencv)
    code = CaptureService(settings, life, progress).run()
    raise SystemExit(code)
