"""The one inference pipeline: decode → detect → track → crop → classify → result.

The worker, ``emotiond analyze``, the benchmark's in-process paths and the public Python API all run frames
through a ``Pipeline``, so the same frames and settings give the same boxes, track ids and emotions
everywhere. It has two halves so the worker can batch across frames: ``detect`` (per frame, as it arrives:
grey, faces, tracks, crops) and ``finish`` (classify a batch of detections in one call and build results).
``process`` runs both for callers that have their frames at hand.

Tracking keeps state per camera. With Haar, full-frame scans run on a background thread; for live cameras
their boxes are taken as soon as a scan is done (lowest latency), for everything else exactly
``full_scan_interval`` frames after the scan started (waiting for it if needed), so a file gives the same
answer on every run, whichever process reads it and however busy the machine is. BlazeFace detects every
frame whole (workers/finder.py says why). Detectors that give landmarks add them to each face; faces whose
roll is known are classified from upright crops when ``[classifier] align`` is on.

It is also the one place faces are hidden (``[privacy] faces``): ``image`` gives the frame as it may leave the
process, each face's box (and, for ``[privacy] hold_frames`` frames, the last box of a face just lost) filled,
blurred or pixelated (workers/redaction.py). The worker publishes only that image, and analyze, the Python API and
the console's upload draw on it, so none of them can show a face the pipeline hid. An image exists only for a frame
whose detection finished: a detector that raises leaves no image at all. A live camera's first
``[tracking] full_scan_interval`` frames give no image either while faces are hidden: the worker joins a live
stream mid-way, and a face its first full scan missed is found by the next one (the canary test saw faces shown
in the first frames before this).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from emotiond.core import bundle as bundles
from emotiond.core import protocol
from emotiond.core.settings import Settings
from emotiond.workers.classifier import BATCH_BUCKETS, Classifier, open_classifier
from emotiond.workers.detector import Found
from emotiond.workers.finder import DetectionKind, Finder, open_detector, open_finder
from emotiond.workers.held_faces import HeldFaces
from emotiond.workers.preprocess import crop_faces, to_gray
from emotiond.workers.redaction import redact

SCORE_DIGITS = 4
LANDMARK_DIGITS = 1


class StageClock:
    """CPU time of the calling thread per stage (``time.thread_time``), summed: what each stage costs, whatever
    else the machine runs. Full scans on the scanner thread are not in it (they are another thread's)."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = defaultdict(float)

    @staticmethod
    def now() -> float:
        return time.thread_time()

    def lap(self, stage: str, since: float) -> float:
        """Add the CPU since ``since`` to ``stage``; the time now, for the next lap."""
        now = time.thread_time()
        self.ms[stage] += (now - since) * 1000
        return now


@dataclass
class Detection:
    """One frame after detection and cropping, waiting for classification."""

    camera: str
    seq: int
    pixels: np.ndarray
    found: Found
    crops: np.ndarray
    kind: DetectionKind
    track_ids: list[int] = field(default_factory=list)
    ended_tracks: list[int] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    cpu_ms: float = 0.0  # this thread's CPU for grey, detection and crops
    hidden: np.ndarray | None = None  # boxes to hide in images (faces and held ones); None: faces are shown
    withheld: bool = False  # no image of this frame may leave (a live camera's first frames while redacting)

    @property
    def frame_size(self) -> tuple[int, int]:
        return self.pixels.shape[1], self.pixels.shape[0]

    @property
    def boxes(self) -> np.ndarray:
        return self.found.boxes


WARM_UP_SIDE = 96  # pixels of the blank frame whose crop sets the classifier's input in a warm-up


class Pipeline:
    def __init__(self, settings: Settings, *, opencv_threads: int = 1, live_cameras: Iterable[str] = ()):
        self.settings = settings
        bundle = bundles.load(bundles.resolve(settings.classifier.model, settings.models.dir))
        if settings.classifier.backend == "litert" and bundle.tflite_path is None:
            bundle = bundles.add_tflite(bundle)
        self.bundle = bundle
        self.classifier: Classifier = open_classifier(bundle, settings.classifier.backend,
                                                      settings.classifier.threads or 1)
        self.detector = open_detector(settings, threads=opencv_threads)
        self.live_cameras = frozenset(live_cameras)
        self._finders: dict[str, Finder] = {}
        self._held = HeldFaces(settings.privacy.hold_frames)
        self.clock = StageClock()

    @property
    def labels(self) -> tuple[str, ...]:
        return self.bundle.labels

    def warm_up(self) -> None:
        """Build the classifier for every batch size up to ``classifier.max_batch``, and the detector's own. A
        worker does this before it says it is ready: each first call of a new size otherwise builds a LiteRT
        interpreter (or traces a graph) while live cameras wait, and their frames go stale."""
        self.detector.warm_up()
        blank = np.zeros((WARM_UP_SIDE, WARM_UP_SIDE, 3), np.uint8)
        gray = to_gray(blank)
        crop = crop_faces(blank, gray, np.array([[0, 0, WARM_UP_SIDE, WARM_UP_SIDE]], np.int32), self.bundle.spec,
                          None)
        for size in BATCH_BUCKETS:
            if size > self.settings.classifier.max_batch:
                break
            self.classifier(np.zeros((size, *crop.shape[1:]), np.float32))

    def reset(self, camera: str) -> None:
        """Forget a camera's tracks (a new video under the same camera name starts afresh)."""
        self._finders.pop(camera, None)
        self._held.forget(camera)

    @property
    def tracked_cameras(self) -> tuple[str, ...]:
        return tuple(self._finders)

    def open_tracks(self, camera: str) -> tuple[int, ...]:
        """Ids of the camera's tracks that have not ended (each was in a published face)."""
        finder = self._finders.get(camera)
        return tuple(track.track_id for track in finder.tracker.tracks) if finder is not None else ()

    def end_tracks(self, camera: str) -> tuple[tuple[int, ...], int]:
        """End every open track of a camera that stopped producing frames: their ids and the last frame they were
        followed in. The camera starts afresh with its next frame."""
        finder = self._finders.pop(camera, None)
        self._held.forget(camera)
        if finder is None:
            return (), 0
        return tuple(track.track_id for track in finder.tracker.tracks), max(0, finder.tracker.last_seq)

    # ------------------------------------------------------------ the two halves
    def detect(self, camera: str, seq: int, pixels: np.ndarray) -> Detection:
        """Grey, faces (tracked when tracking is on), and the classifier's crops of one frame."""
        started, cpu_started = time.perf_counter(), self.clock.now()
        gray = to_gray(pixels)
        lap = self.clock.lap("gray", cpu_started)
        if self.settings.tracking.enabled:
            found, track_ids, ended, kind = self._finder(camera).find(seq, pixels, gray)
        else:
            found, track_ids, ended, kind = self.detector.detect(pixels, gray), [], [], "full"
        lap = self.clock.lap("detect", lap)
        detected = time.perf_counter()
        rolls = found.rolls if self.settings.classifier.align else None
        crops = crop_faces(pixels, gray, found.boxes, self.bundle.spec, rolls)
        lap = self.clock.lap("crop", lap)
        timings = {"detect": (detected - started) * 1000, "crop": (time.perf_counter() - detected) * 1000}
        hidden, withheld = None, False
        if self.settings.privacy.redacting:
            hidden = self._held.update(camera, found.boxes, track_ids)
            withheld = (camera in self.live_cameras
                        and self._held.frames(camera) <= self.settings.tracking.full_scan_interval)
        return Detection(camera, seq, pixels, found, crops, kind, track_ids, ended, timings,
                         (lap - cpu_started) * 1000, hidden, withheld)

    def image(self, detection: Detection) -> np.ndarray | None:
        """The frame as it may leave this process: with ``[privacy] faces`` other than ``show``, a copy with its
        faces, and the faces lost in the last ``hold_frames`` frames, hidden (None: no image of it may leave);
        else the frame itself."""
        if detection.hidden is None:
            return detection.pixels
        if detection.withheld:
            return None
        privacy = self.settings.privacy
        return redact(detection.pixels, detection.hidden, privacy.faces, privacy.mask_scale)

    def classify(self, crops: np.ndarray) -> np.ndarray:
        """Probabilities for stacked crops, in calls of at most ``classifier.max_batch`` faces."""
        step = self.settings.classifier.max_batch
        started = self.clock.now()
        outputs = [self.classifier(crops[begin: begin + step]) for begin in range(0, len(crops), step)]
        self.clock.lap("classify", started)
        return np.concatenate(outputs) if outputs else np.zeros((0, len(self.labels)), np.float32)

    def finish(self, detections: Sequence[Detection]) -> list[tuple[protocol.Face, ...]]:
        """Classify every face of these frames in one batch; the faces of each frame, in order."""
        stacked = [d.crops for d in detections if len(d.crops)]
        probabilities = self.classify(np.concatenate(stacked)) if stacked else np.zeros((0, len(self.labels)))
        faces, offset = [], 0
        started = self.clock.now()
        for detection in detections:
            count = len(detection.boxes)
            faces.append(self.faces(detection, probabilities[offset: offset + count]))
            offset += count
        self.clock.lap("faces", started)
        return faces

    def faces(self, detection: Detection, probabilities: np.ndarray) -> tuple[protocol.Face, ...]:
        """Wire faces of one frame: top emotion and scores, and with tracking the track and smoothed emotion."""
        labels = self.labels
        finder = self._finders.get(detection.camera) if self.settings.tracking.enabled else None
        faces = []
        for index, (box, probs) in enumerate(zip(detection.boxes, probabilities, strict=True)):
            top = int(np.argmax(probs))
            landmarks = None
            if detection.found.landmarks is not None:
                landmarks = tuple((round(float(x), LANDMARK_DIGITS), round(float(y), LANDMARK_DIGITS))
                                  for x, y in detection.found.landmarks[index])
            track_id = smoothed_label = smoothed_confidence = None
            if finder is not None and index < len(detection.track_ids):
                track_id = detection.track_ids[index]
                smoothed_label, smoothed = finder.tracker.smooth(track_id, probs)
                smoothed_confidence = round(float(smoothed[labels.index(smoothed_label)]), SCORE_DIGITS)
            faces.append(protocol.Face(
                box=(int(box[0]), int(box[1]), int(box[2]), int(box[3])), emotion=labels[top],
                confidence=round(float(probs[top]), SCORE_DIGITS),
                scores={label: round(float(p), SCORE_DIGITS) for label, p in zip(labels, probs, strict=True)},
                landmarks=landmarks, track_id=track_id, smoothed_emotion=smoothed_label,
                smoothed_confidence=smoothed_confidence))
        return tuple(faces)

    def result(self, detection: Detection, faces: tuple[protocol.Face, ...], *, captured_at: float,
               latency_ms: dict[str, float], worker: str, extra: dict[str, Any] | None = None,
               published_at: float | None = None) -> protocol.Result:
        """The frame's result in the event schema (the same keys a worker publishes)."""
        tracking = {"ended_tracks": detection.ended_tracks} if self.settings.tracking.enabled else {}
        return protocol.Result(camera=detection.camera, seq=detection.seq, captured_at=captured_at,
                               published_at=time.time() if published_at is None else published_at,
                               frame_size=detection.frame_size, faces=faces,
                               latency_ms=latency_ms, worker=worker, model=self.bundle.name,
                               extra={**tracking, **(extra or {})})

    # ------------------------------------------------------------ both halves at once
    def process(self, camera: str, frames: Sequence[tuple[int, np.ndarray]], worker: str = "in-process",
                extra: Sequence[dict[str, Any]] | None = None) -> list[protocol.Result]:
        """Results for consecutive frames ``(seq, pixels)`` of one camera, classified as one batch."""
        return [result for _detection, result in self._process(camera, frames, worker, extra)]

    def process_images(self, camera: str, frames: Sequence[tuple[int, np.ndarray]], worker: str = "in-process",
                       extra: Sequence[dict[str, Any]] | None = None) -> list[tuple[np.ndarray, protocol.Result]]:
        """``process``, each result with its frame as it may be shown or saved (``image``: faces hidden per
        ``[privacy] faces``; a frame withheld is black). Callers that draw or write frames take these, never their
        own pixels."""
        return [(_or_black(self.image(detection), detection.pixels), result)
                for detection, result in self._process(camera, frames, worker, extra)]

    def _process(self, camera: str, frames: Sequence[tuple[int, np.ndarray]], worker: str,
                 extra: Sequence[dict[str, Any]] | None) -> list[tuple[Detection, protocol.Result]]:
        captured_at = time.time()
        started = time.perf_counter()
        detections = [self.detect(camera, seq, pixels) for seq, pixels in frames]
        detected = time.perf_counter()
        all_faces = self.finish(detections)
        finished = time.perf_counter()
        results = []
        for index, (detection, faces) in enumerate(zip(detections, all_faces, strict=True)):
            latency = {"detect": round(detection.timings_ms["detect"], 3),
                       "classify": round((finished - detected) * 1000, 3),
                       "total": round((finished - started) * 1000, 3)}
            results.append((detection, self.result(detection, faces, captured_at=captured_at, latency_ms=latency,
                                                   worker=worker, extra=extra[index] if extra else None)))
        return results

    def _finder(self, camera: str) -> Finder:
        finder = self._finders.get(camera)
        if finder is None:
            finder = self._finders[camera] = open_finder(self.detector, self.settings, self.labels,
                                                         take_scans_early=camera in self.live_cameras)
        return finder


def _or_black(image: np.ndarray | None, pixels: np.ndarray) -> np.ndarray:
    """A withheld frame, for callers that must keep every frame (a video's timing): black all over."""
    return image if image is not None else np.zeros_like(pixels)
