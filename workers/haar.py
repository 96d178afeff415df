"""Haar cascade face detection (OpenCV's frontal-face cascade), the default backend.

OpenCV cascades must not be shared between threads, so every thread that detects has its own cascade: the
caller's for synchronous full scans (which OpenCV parallelises internally), the background scanner's, and one
per pool thread for re-detecting known faces, where each region is a small call that releases the GIL.

The frontal cascade misses most faces tilted by 30 degrees, so a tracked face that is lost can also be
searched for in its region rotated by a few angles (``detect_rotated``): a face found at angle a was leaning
by a, which is also the roll the crop needs to be upright.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import cv2
import numpy as np

from emotiond.core.settings import DetectionSettings
from emotiond.workers.detector import DetectorError, Found, no_boxes, rotate_points

Box = tuple[int, int, int, int]
CASCADE_FILE = "haarcascade_frontalface_default.xml"
# A known face is looked for at sizes between these multiples of its last size: first the close range (a face
# changes size little between frames; about half the pyramid levels, so half the cost), then the wide one.
CLOSE_SIZES = (0.83, 1.25)
WIDE_SIZES = (0.7, 1.45)
CASCADE_WINDOW = 24  # the frontal cascade's window: no face narrower is found in the image it scans
# Coarse scans (periodic scans while every known face is large) also step the pyramid this much at least: half
# the levels, half the cost; a newcomer falls between two levels by at most 10%, which the cascade tolerates, and
# every few scans are at full resolution and the usual step anyway.
COARSE_SCALE_FACTOR = 1.2


def _load_cascade() -> cv2.CascadeClassifier:
    if not hasattr(cv2, "CascadeClassifier"):
        raise DetectorError("this OpenCV build has no CascadeClassifier (opencv-python>=5); install <5")
    path = cv2.data.haarcascades + CASCADE_FILE
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise DetectorError(f"cannot load Haar cascade {path}")
    return cascade


class HaarFaceDetector:
    name = "haar"

    def __init__(self, settings: DetectionSettings, threads: int = 1):
        self._settings = settings
        _load_cascade()  # fail at start-up, not in the first frame
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="roi") if threads > 1 else None
        self._scanner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scan")
        self._scans_lock = threading.Lock()
        self._scans_in_flight = 0
        self._scanner_rests_until = 0.0  # monotonic time before which a scan that may wait should not start

    def detect(self, pixels: np.ndarray, gray: np.ndarray) -> Found:
        """Every face in the frame (a full scan of ``gray``)."""
        return Found(self._scan(gray))

    def detect_async(self, pixels: np.ndarray, gray: np.ndarray, coarse: float = 1.0) -> Future:
        """``detect`` on the scanner thread; ``coarse`` < 1 shrinks the frame further for this scan and steps its
        pyramid by ``COARSE_SCALE_FACTOR`` (faces narrower than ``min_size`` / ``coarse`` are not found)."""
        with self._scans_lock:
            self._scans_in_flight += 1
        return self._scanner.submit(self._background_scan, gray, coarse)

    def warm_up(self) -> None:
        """Load the cascade on this thread and on the scanner's, and run each once."""
        blank = np.zeros((CASCADE_WINDOW * 4, CASCADE_WINDOW * 4), np.uint8)
        self._scan(blank)
        self._scanner.submit(self._scan, blank).result()

    def scanner_free(self) -> bool:
        """Whether a scan that may wait (a live camera's) should start now: none is queued or running, and the
        scanner has rested as long as its last scan took. The cameras of a worker then take turns, and
        background scans use at most about half a core however many cameras lose faces."""
        with self._scans_lock:
            return not self._scans_in_flight and time.monotonic() >= self._scanner_rests_until

    def _background_scan(self, gray: np.ndarray, coarse: float) -> Found:
        started = time.monotonic()
        try:
            return Found(self._scan(gray, coarse))
        finally:
            ended = time.monotonic()
            with self._scans_lock:
                self._scans_in_flight -= 1
                self._scanner_rests_until = ended + (ended - started)

    def _scan_scale(self, width: int, coarse: float) -> float:
        scale = self._settings.downscale
        widest = self._settings.max_scan_width
        if widest and width > widest:
            scale = min(scale, widest / width)
        return scale * coarse

    def smallest_face(self, width: int, coarse: float = 1.0) -> float:
        """The narrowest face (full-frame pixels) a scan of a frame ``width`` wide finds."""
        return max(self._settings.min_size, CASCADE_WINDOW / self._scan_scale(width, coarse))

    def _scan(self, gray: np.ndarray, coarse: float = 1.0) -> np.ndarray:
        scale = self._scan_scale(gray.shape[1], coarse)
        image = gray
        if scale < 1.0:
            image = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        min_side = max(8, round(self._settings.min_size * scale))
        step = self._settings.scale_factor if coarse >= 1.0 else max(self._settings.scale_factor, COARSE_SCALE_FACTOR)
        boxes = self._thread_cascade().detectMultiScale(
            image,
            scaleFactor=step,
            minNeighbors=self._settings.min_neighbors,
            minSize=(min_side, min_side),
            flags=cv2.CASCADE_SCALE_IMAGE,
        )
        if len(boxes) == 0:
            return no_boxes()
        boxes = np.asarray(boxes, np.float32)
        if scale < 1.0:
            boxes /= scale
        boxes = np.rint(boxes).astype(np.int32)
        # detectMultiScale's order depends on how many threads OpenCV runs; track ids follow the order
        return boxes[np.lexsort((boxes[:, 1], boxes[:, 0]))]

    def detect_regions(self, gray: np.ndarray, regions: list[Box], face_sizes: list[int],
                       face_px: int) -> list[np.ndarray | None]:
        """Re-detect known faces, one answer per region (None: not found). Each region is resized so its face
        is about ``face_px`` wide, and only scales from 0.7x to 1.45x of that are tried: a few percent of the
        cost of a full scan."""
        jobs = [(gray, region, size, face_px) for region, size in zip(regions, face_sizes, strict=True)]
        return self._map(self._detect_region, jobs)

    def detect_rotated(self, gray: np.ndarray, regions: list[Box], face_sizes: list[int], face_px: int,
                       angles: list[float]) -> list[np.ndarray | None]:
        """Like ``detect_regions``, with each region first rotated by its angle (degrees, counter-clockwise on
        screen) about its centre. A face found there leans clockwise by that angle; its box is returned in frame
        pixels, centred where the face is and as large as it is."""
        jobs = [(gray, region, size, face_px, angle)
                for region, size, angle in zip(regions, face_sizes, angles, strict=True)]
        return self._map(self._detect_rotated, jobs)

    def _map(self, function, jobs: list[tuple]) -> list[np.ndarray | None]:
        if self._pool is not None and len(jobs) > 1:
            return list(self._pool.map(lambda job: function(*job), jobs))
        return [function(*job) for job in jobs]

    def _thread_cascade(self) -> cv2.CascadeClassifier:
        cascade = getattr(self._local, "cascade", None)
        if cascade is None:
            cascade = self._local.cascade = _load_cascade()
        return cascade

    def _detect_region(self, gray: np.ndarray, region: Box, size: int, face_px: int) -> np.ndarray | None:
        """First the close range of sizes, then the wide one. At ``face_px`` Haar misses a known face a few
        percent of the time; one retry at 1.5x resolution finds most of those for far less than the full scan
        that would follow."""
        found = self._detect_region_at(gray, region, size, face_px, CLOSE_SIZES)
        if found is None:
            found = self._detect_region_at(gray, region, size, face_px, WIDE_SIZES)
        if found is None and face_px < size:
            found = self._detect_region_at(gray, region, size, round(face_px * 1.5), WIDE_SIZES)
        return found

    def _region_pixels(self, gray: np.ndarray, region: Box, size: int, face_px: int) -> tuple[np.ndarray, float]:
        x, y, w, h = region
        factor = min(1.0, face_px / size)
        roi = gray[y: y + h, x: x + w]
        if factor < 1.0:
            roi = cv2.resize(roi, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        return roi, factor

    def _best_face(self, image: np.ndarray, target: float, sizes: tuple[float, float] = WIDE_SIZES
                   ) -> np.ndarray | None:
        """The largest face of ``sizes`` times ``target`` in a known face's region. A face is expected there, so
        ``region_min_neighbors`` (fewer than a full scan needs) keeps it: a stricter count misses a third of the
        faces at 40 px and sends them to the costlier wide-range retries."""
        low = max(20, int(target * sizes[0]))
        high = max(low + 1, int(target * sizes[1]))
        boxes = self._thread_cascade().detectMultiScale(image, scaleFactor=self._settings.scale_factor,
                                                        minNeighbors=self._settings.region_min_neighbors,
                                                        minSize=(low, low), maxSize=(high, high),
                                                        flags=cv2.CASCADE_SCALE_IMAGE)
        if not len(boxes):
            return None
        return max(boxes, key=lambda b: b[2] * b[3]).astype(np.float32)

    def _detect_region_at(self, gray: np.ndarray, region: Box, size: int, face_px: int,
                          sizes: tuple[float, float]) -> np.ndarray | None:
        x, y, w, h = region
        if w < 8 or h < 8 or size <= 0:
            return None
        roi, factor = self._region_pixels(gray, region, size, face_px)
        best = self._best_face(roi, size * factor, sizes)
        if best is None:
            return None
        best /= factor
        best[:2] += (x, y)
        return best

    def _detect_rotated(self, gray: np.ndarray, region: Box, size: int, face_px: int,
                        angle: float) -> np.ndarray | None:
        """As ``_detect_region``: one retry at 1.5x resolution before giving up."""
        found = self._detect_rotated_at(gray, region, size, face_px, angle)
        if found is None and face_px < size:
            found = self._detect_rotated_at(gray, region, size, round(face_px * 1.5), angle)
        return found

    def _detect_rotated_at(self, gray: np.ndarray, region: Box, size: int, face_px: int,
                           angle: float) -> np.ndarray | None:
        x, y, w, h = region
        if w < 8 or h < 8 or size <= 0:
            return None
        roi, factor = self._region_pixels(gray, region, size, face_px)
        center = (roi.shape[1] / 2, roi.shape[0] / 2)
        turn = cv2.getRotationMatrix2D(center, angle, 1.0)
        upright = cv2.warpAffine(roi, turn, (roi.shape[1], roi.shape[0]), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_REPLICATE)
        best = self._best_face(upright, size * factor)
        if best is None:
            return None
        middle = rotate_points(best[:2] + best[2:] / 2, center, -angle) / factor + (x, y)
        side = best[2:] / factor
        return np.array([*(middle - side / 2), *side], np.float32)
