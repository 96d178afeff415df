"""Haar face detection.

OpenCV cascades must not be shared between threads, so every thread that detects has its own cascade: the
caller's for synchronous full scans (which OpenCV parallelises internally), the background scanner's, and one
per pool thread for re-detecting known faces, where each region is a small call that releases the GIL.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor

import cv2
import numpy as np

from emotiond.daemon.core.errors import UsageError
from emotiond.daemon.core.settings import DetectionSettings
from emotiond.workers.tracking import iou

Box = tuple[int, int, int, int]
NMS_IOU = 0.4
CASCADE_FILE = "haarcascade_frontalface_default.xml"


class DetectorError(UsageError):
    pass


def _load_cascade() -> cv2.CascadeClassifier:
    if not hasattr(cv2, "CascadeClassifier"):
        raise DetectorError("this OpenCV build has no CascadeClassifier (opencv-python>=5); install <5")
    path = cv2.data.haarcascades + CASCADE_FILE
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise DetectorError(f"cannot load Haar cascade {path}")
    return cascade


class HaarFaceDetector:
    def __init__(self, settings: DetectionSettings, threads: int = 1):
        self._settings = settings
        _load_cascade()  # fail at start-up, not in the first frame
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="roi") if threads > 1 else None
        self._scanner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scan")

    def detect(self, gray: np.ndarray) -> np.ndarray:
        """Face boxes (N x 4, int32, x y w h) in the coordinates of ``gray``."""
        return self._scan(gray)

    def detect_async(self, gray: np.ndarray) -> Future:
        """A full scan on the background thread; ``gray`` must not be modified until it is done."""
        return self._scanner.submit(self._scan, gray)

    def _scan(self, gray: np.ndarray) -> np.ndarray:
        scale = self._settings.downscale
        image = gray
        if scale < 1.0:
            image = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        min_side = max(8, round(self._settings.min_size * scale))
        boxes = self._thread_cascade().detectMultiScale(
            image,
            scaleFactor=self._settings.scale_factor,
            minNeighbors=self._settings.min_neighbors,
            minSize=(min_side, min_side),
            flags=cv2.CASCADE_SCALE_IMAGE,
        )
        if len(boxes) == 0:
            return np.zeros((0, 4), np.int32)
        boxes = np.asarray(boxes, np.float32)
        if scale < 1.0:
            boxes /= scale
        return np.rint(boxes).astype(np.int32)

    def detect_regions(self, gray: np.ndarray, regions: list[Box], face_sizes: list[int],
                       face_px: int) -> list[np.ndarray | None]:
        """Re-detect known faces, one answer per region (None: not found). Each region is resized so its face
        is about ``face_px`` wide, and only scales from 0.7x to 1.45x of that are tried: a few percent of the
        cost of a full scan."""
        jobs = [(gray, region, size, face_px) for region, size in zip(regions, face_sizes, strict=True)]
        if self._pool is not None and len(jobs) > 1:
            return list(self._pool.map(lambda job: self._detect_region(*job), jobs))
        return [self._detect_region(*job) for job in jobs]

    def _thread_cascade(self) -> cv2.CascadeClassifier:
        cascade = getattr(self._local, "cascade", None)
        if cascade is None:
            cascade = self._local.cascade = _load_cascade()
        return cascade

    def _detect_region(self, gray: np.ndarray, region: Box, size: int, face_px: int) -> np.ndarray | None:
        """At ``face_px`` Haar misses a known face a few percent of the time; one retry at 1.5x resolution
        finds most of those for far less than the full scan that would follow."""
        found = self._detect_region_at(gray, region, size, face_px)
        if found is None and face_px < size:
            found = self._detect_region_at(gray, region, size, round(face_px * 1.5))
        return found

    def _detect_region_at(self, gray: np.ndarray, region: Box, size: int, face_px: int) -> np.ndarray | None:
        x, y, w, h = region
        if w < 8 or h < 8 or size <= 0:
            return None
        factor = min(1.0, face_px / size)
        roi = gray[y: y + h, x: x + w]
        if factor < 1.0:
            roi = cv2.resize(roi, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        target = size * factor
        low = max(20, int(target * 0.7))
        high = max(low + 1, int(target * 1.45))
        boxes = self._thread_cascade().detectMultiScale(roi, scaleFactor=self._settings.scale_factor,
                                                        minNeighbors=self._settings.min_neighbors,
                                                        minSize=(low, low), maxSize=(high, high),
                                                        flags=cv2.CASCADE_SCALE_IMAGE)
        if not len(boxes):
            return None
        best = max(boxes, key=lambda b: b[2] * b[3]).astype(np.float32) / factor
        best[:2] += (x, y)
        return best


def suppress_overlaps(boxes: np.ndarray) -> np.ndarray:
    """Drop boxes that mostly overlap a larger one (neighbouring regions can find the same face)."""
    if not len(boxes):
        return np.zeros((0, 4), np.int32)
    boxes = np.rint(np.asarray(boxes, np.float32)).astype(np.int32).reshape(-1, 4)
    order = np.argsort(-(boxes[:, 2] * boxes[:, 3]))
    kept: list[np.ndarray] = []
    for index in order:
        box = boxes[index]
        if all(iou(box, other) < NMS_IOU for other in kept):
            kept.append(box)
    return np.array(kept, np.int32).reshape(-1, 4)
