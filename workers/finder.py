"""Where to look for faces in a camera's next frame: the detection policy around a CameraTracker.

Full-frame Haar scans are almost all of the cost, so:

* known faces are re-detected every frame in small regions around their last box (cheap);
* full scans run on a background thread, every ``full_scan_interval`` frames, and back to back while the
  camera shows no face or has lost one; faces such a scan finds that are not tracked yet are confirmed by a
  region re-detection on the frame at hand before they join. A live camera takes a scan's boxes as soon as
  it is done; any other source takes them exactly ``full_scan_interval`` frames after the scan started,
  waiting for it if needed, so its answer does not depend on timing. A new face is found within twice that
  many frames plus one (the scan that was already running, then the next one), and within a few frames live;
* only a camera's first frame (or one after a long gap), and a frame where a tracked face vanished from its
  region, are scanned synchronously, so a fast move is never reported as a missing face.

Expensive scans therefore never stall a live camera's frames, and a second core does them when there is one.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Literal

import numpy as np

from emotiond.daemon.core.settings import TrackingSettings
from emotiond.workers.detector import HaarFaceDetector, suppress_overlaps
from emotiond.workers.tracking import Box, CameraTracker, Track, iou

DetectionKind = Literal["full", "tracked"]


class FaceFinder:
    def __init__(self, detector: HaarFaceDetector, settings: TrackingSettings, labels: tuple[str, ...],
                 take_scans_early: bool = False):
        self.tracker = CameraTracker(settings, labels)
        self._take_scans_early = take_scans_early
        self._detector = detector
        self._settings = settings
        self._scan: Future | None = None
        self._scan_seq = -1  # frame the running background scan looks at
        self._last_scan_seq: int | None = None

    def find(self, seq: int, gray: np.ndarray) -> tuple[np.ndarray, list[int], list[int], DetectionKind]:
        """Boxes in this frame, their track ids, the tracks that ended, and how the boxes were found."""
        tracker = self.tracker
        height, width = gray.shape[:2]
        newcomers = self._finished_scan(seq)
        long_gap = tracker.last_seq < 0 or not 0 < seq - tracker.last_seq <= self._settings.full_scan_interval
        kind: DetectionKind = "tracked"
        if long_gap:
            boxes, kind = self._detector.detect(gray), "full"
        else:
            candidates = [Track(-1, b) for b in newcomers if all(iou(b, t.box) < 0.3 for t in tracker.tracks)]
            following = tracker.tracks + candidates
            found = self._detector.detect_regions(
                gray, [t.region(self._settings.roi_margin, width, height) for t in following],
                [t.box[2] for t in following], self._settings.roi_face_px)
            vanished = any(box is None and track.missed == 0 for box, track in zip(found, tracker.tracks, strict=False))
            if vanished:
                boxes, kind = self._detector.detect(gray), "full"
            else:
                boxes = suppress_overlaps(np.array([b for b in found if b is not None]))
        if kind == "full":
            self._last_scan_seq = seq
        track_ids, ended = tracker.associate(seq, boxes)
        self._start_scan_if_due(seq, gray)
        return boxes, track_ids, ended, kind

    def _finished_scan(self, seq: int) -> list[Box]:
        if self._scan is None:
            return []
        due = seq - self._scan_seq >= self._settings.full_scan_interval
        if not due and not (self._take_scans_early and self._scan.done()):
            return []
        boxes = self._scan.result()
        self._scan = None
        return [(int(b[0]), int(b[1]), int(b[2]), int(b[3])) for b in boxes]

    def _start_scan_if_due(self, seq: int, gray: np.ndarray) -> None:
        if self._scan is not None:
            return
        tracks = self.tracker.tracks
        due = (not tracks or any(t.missed for t in tracks) or self._last_scan_seq is None
               or seq - self._last_scan_seq >= self._settings.full_scan_interval)
        if due:
            self._scan = self._detector.detect_async(gray)
            self._scan_seq = self._last_scan_seq = seq
