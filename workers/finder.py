"""Where to look for faces in a camera's next frame: the detection policy around a CameraTracker, per backend.

Haar (``RegionFinder``). Full-frame Haar scans are almost all of the cost, so:

* known faces are re-detected every frame in small regions around their last box (cheap);
* a known face missing from its region is looked for again in the region turned by each of
  ``[detection] haar_rotations`` (both ways), starting with the angle it was last found at, before it counts as
  missing: the frontal cascade loses most heads that roll past 20 degrees, and a turned region finds them for
  a few small calls;
* full scans run on a background thread, every ``full_scan_interval`` frames, and back to back while the
  camera shows no face or has lost one; faces such a scan finds that are not tracked yet are confirmed by a
  region re-detection on the frame at hand before they join. A live camera takes a scan's boxes as soon as
  it is done, and starts one only when the worker's scanner is free and has rested as long as its last scan
  took (the cameras of a worker take turns, and scans use at most about half a core); any other source takes
  them exactly ``full_scan_interval`` frames after the scan started,
  waiting for it if needed, so its answer does not depend on timing. A new face is found within twice that
  many frames plus one (the scan that was already running, then the next one), and within a few frames live;
* only a camera's first frame (or one after a long gap: ``full_scan_interval`` frames, four times that for a
  live camera, which skips frames whenever the workers are busy), and a frame where a tracked face vanished
  from its region, are scanned synchronously, so a fast move is never reported as a missing face;
* a face that held still (``StillFaces``: its box barely moved between its last two detections and still
  holds about the same pixels) is not looked for in the next frame: its box is carried over, and it is looked
  for again in the frame after (``[tracking] reuse_stable``). That halves the region scans of faces that move
  slowly; their emotion is still classified from the new frame.
* while every known face is at least 1.5 times as wide as the narrowest face a half-resolution scan finds,
  the periodic scans look at the frame at half resolution (a quarter of the cost), all but every
  ``FULL_SCAN_EVERY``-th: a newcomer two thirds as large as the faces already there is found as soon as
  before, a smaller one within that many scans.

Expensive scans therefore never stall a live camera's frames, and a second core does them when there is one.

BlazeFace (``FrameFinder``). A pass over the whole frame costs about an eighth of a Haar full scan (benchmarks/
bench_detectors.py), finds new and turned faces at once and gives landmarks. Its input is a fixed 192x192, so
looking in a region would cost a whole model call per face, as much as the whole frame. Frames are therefore
detected whole and the tracker only associates boxes: no regions, no background scans. When every known face held
still (as ``StillFaces`` decides for Haar), the next frame keeps their boxes and keypoints without a model call,
and the frame after is detected whole again: a newcomer waits at most one frame, and a still scene costs half.
Which frames are carried depends on the frames alone, so every source gives the same answer whatever the
timing (a live camera that skipped a frame detects the next whole).
"""

from __future__ import annotations

import math
from concurrent.futures import Future
from typing import Literal, Protocol

import cv2
import numpy as np

from emotiond.core.settings import Settings, TrackingSettings
from emotiond.workers.detector import FaceDetector, Found, suppress_overlaps
from emotiond.workers.haar import HaarFaceDetector
from emotiond.workers.tracking import Box, CameraTracker, Track, iou

DetectionKind = Literal["full", "tracked"]
COARSE_SCAN = 0.5  # periodic scans while all known faces are large look at the frame this much smaller
FULL_SCAN_EVERY = 4  # ... except every this many-th, at full resolution, for small newcomers
MAX_MARGIN_GROWTH = 3.0  # after a skip of n frames, regions are sqrt(n) times wider around a face, up to this
LIVE_GAP_INTERVALS = 4  # a live camera's known faces are looked for around their boxes up to this many intervals
STABLE_IOU = 0.85  # a face whose last two boxes overlap this much is carried into the next frame unscanned,
STILL_LEVELS = 20.0  # if the pixels of its box differ from the last frame's by less than this (mean, 0..255;
# a face that moved a little differs by 3 to 20, one that left by 40 or more)
PATCH = (16, 16)  # the size faces are compared at


def open_detector(settings: Settings, threads: int = 1) -> FaceDetector:
    """The backend chosen by ``[detection] backend``."""
    if settings.detection.backend == "blazeface":
        from emotiond.workers.blazeface import BlazeFaceDetector

        return BlazeFaceDetector(settings.detection, settings.models.dir, threads)
    return HaarFaceDetector(settings.detection, threads=threads)


class Finder(Protocol):
    tracker: CameraTracker

    def find(self, seq: int, pixels: np.ndarray, gray: np.ndarray) -> tuple[Found, list[int], list[int],
                                                                             DetectionKind]:
        """Faces in this frame, their track ids, the tracks that ended, and how the faces were found."""
        ...


def open_finder(detector: FaceDetector, settings: Settings, labels: tuple[str, ...],
                take_scans_early: bool = False) -> Finder:
    if isinstance(detector, HaarFaceDetector):
        return RegionFinder(detector, settings.tracking, labels, take_scans_early,
                            rotations=tuple(settings.detection.haar_rotations))
    return FrameFinder(detector, settings.tracking, labels)


class StillFaces:
    """Which tracked faces held still, so their box can be carried into the next frame unscanned
    (``[tracking] reuse_stable``): a face whose box barely moved over its last two detections (``STABLE_IOU``)
    and whose box still holds about the same pixels (``STILL_LEVELS``, so a face that leaves is not carried);
    never two frames running, and only from the frame just before."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._before: dict[int, Box] = {}  # track id -> its box one detection earlier
        self._carried: set[int] = set()  # tracks whose box was carried forward in the last frame
        self._patches: dict[int, np.ndarray] = {}  # track id -> its face's pixels in the last frame, small

    def carry(self, tracker: CameraTracker, seq: int, gray: np.ndarray) -> dict[int, Box]:
        """Tracks (by index) that may keep their box in this frame, with that box."""
        if not self.enabled or seq - tracker.last_seq != 1:
            return {}
        carried = {}
        for index, track in enumerate(tracker.tracks):
            earlier = self._before.get(track.track_id)
            if track.missed or earlier is None or track.track_id in self._carried:
                continue
            if iou(earlier, track.box) < STABLE_IOU or track.track_id not in self._patches:
                continue
            if float(np.abs(_patch(gray, track.box) - self._patches[track.track_id]).mean()) < STILL_LEVELS:
                carried[index] = track.box
        return carried

    def remember(self, before: dict[int, Box], track_ids: list[int], boxes: np.ndarray, gray: np.ndarray,
                 carried_ids: set[int]) -> None:
        """After association: each track's box before this frame (``before``), the tracks this frame carried."""
        self._carried = carried_ids
        self._before = {tid: before[tid] for tid in track_ids if tid in before}
        if self.enabled:
            self._patches = {tid: _patch(gray, box) for tid, box in zip(track_ids, boxes, strict=True)}


class FrameFinder:
    """Detect the whole frame, except the frame after one where every known face held still; track by overlap."""

    def __init__(self, detector: FaceDetector, settings: TrackingSettings, labels: tuple[str, ...]):
        self.tracker = CameraTracker(settings, labels)
        self._detector = detector
        self._still = StillFaces(settings.reuse_stable)
        self._seen: dict[int, tuple[np.ndarray | None, float]] = {}  # track id -> its last keypoints and roll

    def find(self, seq: int, pixels: np.ndarray, gray: np.ndarray) -> tuple[Found, list[int], list[int],
                                                                             DetectionKind]:
        tracker = self.tracker
        carried = self._still.carry(tracker, seq, gray)
        kind: DetectionKind = "full"
        if tracker.tracks and len(carried) == len(tracker.tracks):
            found, kind = self._carried_faces(), "tracked"
        else:
            found = self._detector.detect(pixels, gray)
        before = {t.track_id: t.box for t in tracker.tracks}
        track_ids, ended = tracker.associate(seq, found.boxes)
        self._still.remember(before, track_ids, found.boxes, gray, set(track_ids) if kind == "tracked" else set())
        landmarks = [None] * len(track_ids) if found.landmarks is None else list(found.landmarks)
        self._seen = {tid: (points, float(roll))
                      for tid, points, roll in zip(track_ids, landmarks, found.rolls, strict=True)}  # type: ignore[arg-type]
        return found, track_ids, ended, kind

    def _carried_faces(self) -> Found:
        """Every known face as the last frame found it: its box, keypoints and roll."""
        tracks = self.tracker.tracks
        boxes = np.array([t.box for t in tracks], np.int32).reshape(-1, 4)
        seen = [self._seen.get(t.track_id, (None, math.nan)) for t in tracks]
        rolls = np.array([roll for _points, roll in seen], np.float32)
        if any(points is None for points, _roll in seen):
            return Found(boxes, None, rolls)
        return Found(boxes, np.stack([points for points, _roll in seen]).astype(np.float32), rolls)


class RegionFinder:
    """Haar's policy: regions around known faces every frame (turned when a face is lost), full scans seldom."""

    def __init__(self, detector: HaarFaceDetector, settings: TrackingSettings, labels: tuple[str, ...],
                 take_scans_early: bool = False, rotations: tuple[float, ...] = ()):
        self.tracker = CameraTracker(settings, labels)
        self._take_scans_early = take_scans_early
        self._detector = detector
        self._settings = settings
        self._angles = sorted({0.0, *rotations, *(-a for a in rotations)})
        self._rolls: dict[int, float] = {}  # track id -> angle its face was last found at
        self._scan: Future | None = None
        self._scan_seq = -1  # frame the running background scan looks at
        self._last_scan_seq: int | None = None
        self._periodic_scans = 0
        self._still = StillFaces(settings.reuse_stable)

    def find(self, seq: int, pixels: np.ndarray, gray: np.ndarray) -> tuple[Found, list[int], list[int],
                                                                             DetectionKind]:
        tracker = self.tracker
        newcomers = self._finished_scan(seq)
        long_gap = tracker.last_seq < 0 or not 0 < seq - tracker.last_seq <= self._longest_gap()
        kind: DetectionKind = "tracked"
        carried: dict[int, Box] = {}
        if long_gap:
            found, kind = self._detector.detect(pixels, gray), "full"
        else:
            candidates = [Track(-1, b) for b in newcomers if all(iou(b, t.box) < 0.3 for t in tracker.tracks)]
            carried = self._still.carry(tracker, seq, gray)
            margin = self._settings.roi_margin * min(MAX_MARGIN_GROWTH, math.sqrt(seq - tracker.last_seq))
            boxes, rolls = self._follow(gray, tracker.tracks + candidates, carried, margin)
            vanished = any(box is None and track.missed == 0 for box, track in zip(boxes, tracker.tracks,
                                                                                   strict=False))
            present = [i for i, box in enumerate(boxes) if box is not None]
            rounded = np.rint(np.array([boxes[i] for i in present], np.float32)).astype(np.int32).reshape(-1, 4)
            keep = suppress_overlaps(rounded)
            found = Found(rounded[keep], None, np.array([rolls[present[i]] for i in keep], np.float32))
            if vanished:
                found, kind = self._with_scan(self._detector.detect(pixels, gray), found), "full"
        if kind == "full":
            self._last_scan_seq = seq
        before = {t.track_id: t.box for t in tracker.tracks}
        carried_ids = {tracker.tracks[i].track_id for i in carried} if kind == "tracked" else set()
        track_ids, ended = tracker.associate(seq, found.boxes)
        self._still.remember(before, track_ids, found.boxes, gray, carried_ids)
        self._remember_rolls(track_ids, found.rolls, ended)
        self._start_scan_if_due(seq, pixels, gray)
        return found, track_ids, ended, kind

    def _longest_gap(self) -> int:
        """The most frames since the last one before known faces count as lost. A live camera skips frames when
        the workers are busy, and scanning every frame after such a skip whole would make them busier still, so
        it looks around its known faces first, in regions widened with the skip (a face not found there brings
        the scan at once)."""
        interval = self._settings.full_scan_interval
        return interval * LIVE_GAP_INTERVALS if self._take_scans_early else interval

    def _follow(self, gray: np.ndarray, following: list[Track], carried: dict[int, Box], margin: float
                ) -> tuple[list[np.ndarray | None], list[float]]:
        """Each followed face's box in this frame (None: not found) and the angle it was found at (NaN when
        upright). Faces in ``carried`` are not looked for (their box is given). Round k tries each face still
        missing at its k-th angle, nearest to its last angle first; faces not tracked yet (from a scan) are
        only looked for upright."""
        height, width = gray.shape[:2]
        settings = self._settings
        boxes: list[np.ndarray | None] = [None] * len(following)
        rolls = [math.nan] * len(following)
        for index, box in carried.items():
            boxes[index] = np.array(box, np.float32)
            last = self._rolls.get(following[index].track_id, 0.0)
            rolls[index] = last if last else math.nan
        plans = [self._plan(t.track_id) if t.track_id >= 0 else [0.0] for t in following]
        for round_index in range(len(self._angles)):
            todo = [i for i, box in enumerate(boxes) if box is None and round_index < len(plans[i])]
            if not todo:
                break
            upright = [i for i in todo if plans[i][round_index] == 0.0]
            turned = [i for i in todo if plans[i][round_index] != 0.0]
            if upright:
                answers = self._detector.detect_regions(
                    gray, [following[i].region(margin, width, height) for i in upright],
                    [following[i].box[2] for i in upright], settings.roi_face_px)
                for i, box in zip(upright, answers, strict=True):
                    boxes[i] = box
            if turned:
                angles = [plans[i][round_index] for i in turned]
                answers = self._detector.detect_rotated(
                    gray, [following[i].region(margin, width, height) for i in turned],
                    [following[i].box[2] for i in turned], settings.roi_face_px, angles)
                for i, angle, box in zip(turned, angles, answers, strict=True):
                    boxes[i], rolls[i] = box, (angle if box is not None else math.nan)
        return boxes, rolls

    @staticmethod
    def _with_scan(scan: Found, followed: Found) -> Found:
        """A full scan's faces, plus the turned faces it cannot see (found in their regions this frame)."""
        extra = [i for i, (box, roll) in enumerate(zip(followed.boxes, followed.rolls, strict=True))
                 if not np.isnan(roll) and all(iou(box, other) < 0.3 for other in scan.boxes)]
        if not extra:
            return scan
        turned = followed.take(extra)
        return Found(np.concatenate([scan.boxes, turned.boxes]),
                     None, np.concatenate([scan.rolls, turned.rolls]))  # type: ignore[list-item]

    def _plan(self, track_id: int) -> list[float]:
        """Angles to try for a tracked face, nearest to the one it was last found at first."""
        last = self._rolls.get(track_id, 0.0)
        return sorted(self._angles, key=lambda angle: (abs(angle - last), angle))

    def _remember_rolls(self, track_ids: list[int], rolls: np.ndarray | None, ended: list[int]) -> None:
        for index, track_id in enumerate(track_ids):
            roll = float(rolls[index]) if rolls is not None else math.nan
            self._rolls[track_id] = 0.0 if math.isnan(roll) else roll
        for track_id in ended:
            self._rolls.pop(track_id, None)

    def _finished_scan(self, seq: int) -> list[Box]:
        if self._scan is None:
            return []
        due = seq - self._scan_seq >= self._settings.full_scan_interval
        if not due and not (self._take_scans_early and self._scan.done()):
            return []
        found: Found = self._scan.result()
        self._scan = None
        return [(int(b[0]), int(b[1]), int(b[2]), int(b[3])) for b in found.boxes]

    def _start_scan_if_due(self, seq: int, pixels: np.ndarray, gray: np.ndarray) -> None:
        if self._scan is not None:
            return
        tracks = self.tracker.tracks
        searching = not tracks or any(t.missed for t in tracks) or self._last_scan_seq is None
        if self._take_scans_early and not self._detector.scanner_free():
            return  # a live camera's scan waits for its turn on the worker's scanner
        if searching or seq - self._last_scan_seq >= self._settings.full_scan_interval:
            coarse = 1.0 if searching else self._coarseness(gray.shape[1])
            self._scan = self._detector.detect_async(pixels, gray, coarse)
            self._scan_seq = self._last_scan_seq = seq

    def _coarseness(self, width: int) -> float:
        """How much smaller than usual a periodic scan may look (1.0: as usual)."""
        self._periodic_scans += 1
        smallest = min(t.box[2] for t in self.tracker.tracks)
        large = self._settings.coarse_scans and smallest >= 1.5 * self._detector.smallest_face(width, COARSE_SCAN)
        return COARSE_SCAN if large and self._periodic_scans % FULL_SCAN_EVERY else 1.0


def _patch(gray: np.ndarray, box: Box | np.ndarray) -> np.ndarray:
    """The pixels of ``box`` (clipped to the frame) shrunk to ``PATCH``, as float32."""
    height, width = gray.shape[:2]
    x, y, w, h = (int(v) for v in box)
    x0, y0, x1, y1 = max(0, x), max(0, y), min(width, x + w), min(height, y + h)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return np.full(PATCH[::-1], -255.0, np.float32)  # matches nothing
    return cv2.resize(gray[y0:y1, x0:x1], PATCH, interpolation=cv2.INTER_AREA).astype(np.float32)
