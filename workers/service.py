"""The inference worker process: ask for frames, detect faces, classify them in batches, publish results.

A worker holds at most ``capture.credits_per_worker`` frames. It detects faces in each frame as it arrives,
then classifies the faces of every frame it holds in one compiled call, publishes one result per frame and
acknowledges each frame, which returns its credit.

It also ends tracks: when capture says a camera stopped producing frames (``end``: end of stream, down past the
grace period, or the tracks of a lost worker) and, on SIGTERM, every camera it holds, after the results of the
frames it holds. Each camera's ended tracks go out in one ``tracks.<camera>`` message.

With ``[privacy] publish = "aggregates"`` nothing per face leaves it (no frames, results or track ids): each
camera's faces go into windows of counts and shares (workers/aggregates.py), published as ``aggregate.<camera>``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Any

import zmq

from emotiond.core import bus, protocol
from emotiond.core.lifecycle import Lifecycle, configure_threads
from emotiond.core.metrics import metrics
from emotiond.core.settings import Settings
from emotiond.core.sources import source_is_live
from emotiond.workers.aggregates import WindowAggregator
from emotiond.workers.batcher import MicroBatcher, PendingFrame
from emotiond.workers.pipeline import Pipeline

log = logging.getLogger(__name__)


class WorkerService:
    def __init__(self, settings: Settings, name: str, life: Lifecycle):
        self._settings = settings
        self._name = name
        self._life = life
        self._pid = os.getpid()
        workers = settings.worker_count()
        cores = os.cpu_count() or 1
        opencv_threads = settings.detection.threads or max(1, cores // workers)
        configure_threads(opencv_threads)
        live = [source.name for source in settings.sources if source_is_live(source)]
        self._pipeline = Pipeline(settings, opencv_threads=opencv_threads, live_cameras=live)
        self._pipeline.warm_up()
        self.bundle = self._pipeline.bundle
        self._batcher = MicroBatcher(settings.classifier.max_batch, settings.classifier.max_wait_ms / 1000.0)
        self._capacity = settings.capture.credits_per_worker
        self._held = 0
        self._end_requests: list[protocol.Control] = []
        self._m = metrics()
        self._subscriptions = bus.SubscriptionTracker()
        privacy = settings.privacy
        self._aggregates = (WindowAggregator(privacy.window_seconds, privacy.min_group, name)
                            if privacy.publish == "aggregates" else None)

    def run(self) -> int:
        dealer = bus.frames_dealer(self._settings, self._name)
        publisher = bus.results_publisher(self._settings)
        poller = zmq.Poller()
        poller.register(dealer, zmq.POLLIN)
        poller.register(publisher, zmq.POLLIN)
        self._send_control(dealer, "ready", credits=self._capacity)
        heartbeat_every = self._settings.workers.heartbeat_seconds
        next_heartbeat = time.monotonic() + heartbeat_every
        log.info("worker %s ready (model %s, backend %s)", self._name, self.bundle.name,
                 self._settings.classifier.backend)
        try:
            while not self._life.should_stop():
                self._life.tick()
                now = time.monotonic()
                wait = self._batcher.wait_left(now) if len(self._batcher) else max(0.0, next_heartbeat - now)
                events = dict(poller.poll(max(1, int(wait * 1000))))
                if publisher in events:
                    self._subscriptions.drain(publisher)
                if dealer in events:
                    self._receive(dealer)
                if self._end_requests:
                    self._end_tracks(dealer, publisher)
                now = time.monotonic()
                if self._batcher.due(now, more_may_arrive=self._held < self._capacity):
                    self._flush(dealer, publisher)
                if now >= next_heartbeat:
                    self._send_control(dealer, "heartbeat", credits=self._capacity - self._held)
                    next_heartbeat = now + heartbeat_every
                    if self._aggregates is not None:
                        self._publish_aggregates(publisher, self._aggregates.due(time.time()))
            if len(self._batcher):
                self._flush(dealer, publisher)
            for camera in self._pipeline.tracked_cameras:
                self._publish_ended(publisher, camera, "stop")
            if self._aggregates is not None:
                self._publish_aggregates(publisher, self._aggregates.end_all(time.time()))
        finally:
            publisher.close(linger=500)
            dealer.close(linger=500)
        return 0

    def _send_control(self, dealer: zmq.Socket, kind: str, credits: int = 0, camera: str = "", seq: int = -1,
                      tracks: tuple[int, ...] = (), cost_ms: float = 0.0) -> None:
        message = protocol.Control(kind, self._name, self._pid, credits, camera, seq, tracks,  # type: ignore[arg-type]
                                   cost_ms=round(cost_ms, 3))
        try:
            dealer.send_multipart(protocol.encode_control(message), zmq.NOBLOCK)
        except zmq.Again:
            log.warning("control message %s not sent: capture is not keeping up", kind)

    def _receive(self, dealer: zmq.Socket) -> None:
        """Take every frame already waiting, detecting faces in each as it is taken."""
        while True:
            try:
                parts = dealer.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            received_at = time.time()
            started, cpu_started = time.perf_counter(), time.thread_time()
            try:
                frame = protocol.decode(parts, self._settings.bus.max_frame_pixels)
            except protocol.ProtocolError as exc:
                self._m.bad_messages.labels("worker", exc.reason).inc()
                log.warning("dropping malformed frame message: %s", exc)
                self._send_control(dealer, "done")  # return the credit all the same
                continue
            if isinstance(frame, protocol.Control) and frame.kind == "end":
                self._end_requests.append(frame)
                continue
            if not isinstance(frame, protocol.Frame):
                self._m.bad_messages.labels("worker", "unexpected_kind").inc()
                continue
            self._held += 1
            decoded = time.perf_counter()
            detection = self._pipeline.detect(frame.header.camera, frame.header.seq, frame.pixels)
            self._m.detections.labels(detection.kind).inc()
            timings = {"decode": (decoded - started) * 1000, **detection.timings_ms,
                       "queue": max(0.0, (received_at - frame.header.captured_at) * 1000)}
            self._m.stage_latency.labels("decode").observe(timings["decode"] / 1000)
            self._m.stage_latency.labels("detect").observe(timings["detect"] / 1000)
            cpu_ms = (time.thread_time() - cpu_started) * 1000
            self._batcher.add(PendingFrame(frame, detection, timings, cpu_ms), time.monotonic(),
                              live=frame.header.camera in self._pipeline.live_cameras)

    def _flush(self, dealer: zmq.Socket, publisher: zmq.Socket) -> None:
        items = self._batcher.take()
        started, cpu_started = time.perf_counter(), time.thread_time()
        all_faces = self._pipeline.finish([item.detection for item in items])
        classify_ms = (time.perf_counter() - started) * 1000
        classify_cpu_ms = (time.thread_time() - cpu_started) * 1000
        faces_total = sum(len(item.detection.crops) for item in items)
        if faces_total:
            self._m.stage_latency.labels("classify").observe(classify_ms / 1000)
            step = self._settings.classifier.max_batch
            for begin in range(0, faces_total, step):
                self._m.batch_size.observe(min(step, faces_total - begin))
        for item, faces in zip(items, all_faces, strict=True):
            publish_started = time.thread_time()
            self._publish(publisher, item, faces, classify_ms)
            self._held -= 1
            camera = item.frame.header.camera
            share = len(item.detection.crops) / faces_total if faces_total else 1 / len(items)
            cost_ms = item.cpu_ms + classify_cpu_ms * share + (time.thread_time() - publish_started) * 1000
            self._send_control(dealer, "done", camera=camera, seq=item.frame.header.seq,
                               tracks=self._pipeline.open_tracks(camera)[:protocol.MAX_TRACKS], cost_ms=cost_ms)

    def _end_tracks(self, dealer: zmq.Socket, publisher: zmq.Socket) -> None:
        """Carry out capture's ``end`` requests, after the results of every frame already held."""
        if len(self._batcher):
            self._flush(dealer, publisher)
        requests, self._end_requests = self._end_requests, []
        for request in requests:
            if request.tracks:  # a lost worker's tracks: only announced, this worker's own tracks go on
                lost = protocol.TracksEnded(request.camera, request.tracks, request.reason, time.time(),
                                            max(0, request.seq), self._name)
                self._publish_tracks(publisher, lost)
            else:
                self._publish_ended(publisher, request.camera, request.reason)
            if self._aggregates is not None:
                self._publish_aggregates(publisher, self._aggregates.end(request.camera, time.time()))
            self._send_control(dealer, "ended", camera=request.camera)

    def _publish_ended(self, publisher: zmq.Socket, camera: str, reason: str) -> None:
        tracks, seq = self._pipeline.end_tracks(camera)
        if tracks:
            self._publish_tracks(publisher, protocol.TracksEnded(camera, tracks, reason, time.time(), seq, self._name))

    def _publish_tracks(self, publisher: zmq.Socket, message: protocol.TracksEnded) -> None:
        """One message per ``protocol.MAX_TRACKS`` ids (a message may hold no more); none in aggregates mode."""
        if self._aggregates is not None:
            return
        log.info("camera %s: tracks %s ended (%s)", message.camera, list(message.ended_tracks), message.reason)
        ids = message.ended_tracks
        for begin in range(0, len(ids), protocol.MAX_TRACKS):
            part = dataclasses.replace(message, ended_tracks=ids[begin: begin + protocol.MAX_TRACKS])
            try:
                publisher.send_multipart(protocol.encode_tracks_ended(part), zmq.NOBLOCK)
            except zmq.Again:
                log.warning("camera %s: ended tracks not published: the results proxy is not keeping up",
                            message.camera)

    def _publish(self, publisher: zmq.Socket, item: PendingFrame, faces: tuple[protocol.Face, ...],
                 classify_ms: float) -> None:
        """Publish one frame's result (and the frame itself while a viewer wants it)."""
        header = item.frame.header
        started = time.perf_counter()
        frame_topic = protocol.FRAME_PREFIX + header.camera.encode()
        if self._aggregates is not None:
            self._publish_aggregates(publisher, self._aggregates.add(header.camera, header.captured_at, faces))
        elif self._subscriptions.wanted(frame_topic):
            encoded = protocol.FrameHeader(header.camera, header.seq, header.captured_at, header.shape,
                                           self._settings.bus.frame_encoding)
            image = self._pipeline.image(item.detection)  # faces hidden per [privacy] faces; None: withheld
            if image is not None:
                parts = protocol.encode_frame(encoded, image, self._settings.bus.jpeg_quality)
                publisher.send_multipart(parts, zmq.NOBLOCK, copy=False)
        latency = {k: round(v, 3) for k, v in item.timings_ms.items()}
        latency["classify"] = round(classify_ms, 3)
        latency["publish"] = round((time.perf_counter() - started) * 1000, 3)
        published_at = time.time()
        latency["total"] = round((published_at - header.captured_at) * 1000, 3)
        result = self._pipeline.result(item.detection, faces, captured_at=header.captured_at,
                                       latency_ms=latency, worker=self._name, published_at=published_at)
        if self._aggregates is None:
            publisher.send_multipart(protocol.encode_result(result), zmq.NOBLOCK)
        self._m.stage_latency.labels("publish").observe(latency["publish"] / 1000)
        self._m.capture_to_publish.labels(header.camera).observe(max(0.0, published_at - header.captured_at))
        self._m.frames_processed.labels(header.camera).inc()
        for face in faces:
            self._m.emotions.labels(header.camera, face.emotion).inc()
        if faces:
            self._m.faces_detected.labels(header.camera).inc(len(faces))


    def _publish_aggregates(self, publisher: zmq.Socket, aggregates: list[protocol.Aggregate]) -> None:
        for aggregate in aggregates:
            try:
                publisher.send_multipart(protocol.encode_aggregate(aggregate), zmq.NOBLOCK)
            except zmq.Again:
                log.warning("camera %s: aggregate window not published: the results proxy is not keeping up",
                            aggregate.camera)


def main(settings_data: dict[str, Any], name: str, heartbeat: Any = None) -> None:
    """Process entry point (spawned by the supervisor, or run alone by ``emotiond worker``)."""
    settings = Settings.model_validate(settings_data)
    life = Lifecycle(f"worker-{name}", heartbeat, settings.logging.level)
    raise SystemExit(WorkerService(settings, name, life).run())
