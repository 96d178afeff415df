"""Haar face detection. One cascade per process, never shared between threads (OpenCV's rule)."""

from __future__ import annotations

import cv2
import numpy as np

from daemon.settings import DetectionSettings
from workers.tracking import iou

Box = tuple[int, int, int, int]
NMS_IOU = 0.4

CASCADE_FILE = "haarcascade_frontalface_default.xml"


class DetectorError(RuntimeError):
    pass


class HaarFaceDetector:
    def __init__(self, settings: DetectionSettings):
        if not hasattr(cv2, "CascadeClassifier"):
            raise DetectorError("this OpenCV build has no CascadeClassifier (opencv-python>=5); install <5")
        path = cv2.data.haarcascades + CASCADE_FILE
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise DetectorError(f"cannot load Haar cascade {path}")
        self._settings = settings

    def detect(self, gray: np.ndarray) -> np.ndarray:
        """Face boxes (N x 4, int32, x y w h) in the coordinates of ``gray``."""
        scale = self._settings.downscale
        image = gray
        if scale < 1.0:
            image = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        min_side = max(8, round(self._settings.min_size * scale))
        boxes = self._cascade.detectMultiScale(
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

    def detect_near(self, gray: np.ndarray, regions: list[Box], face_sizes: list[int], face_px: int) -> np.ndarray:
        """Re-detect known faces: each region is resized so its face is about ``face_px`` wide, and only
        scales from 0.7x to 1.45x of that are tried. Costs a few percent of a full scan."""
        found: list[np.ndarray] = []
        for (x, y, w, h), size in zip(regions, face_sizes, strict=True):
            if w < 8 or h < 8 or size <= 0:
                continue
            factor = min(1.0, face_px / size)
            roi = gray[y: y + h, x: x + w]
            if factor < 1.0:
                roi = cv2.resize(roi, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
            target = size * factor
            low = max(20, int(target * 0.7))
            high = max(low + 1, int(target * 1.45))
            boxes = self._cascade.detectMultiScale(roi, scaleFactor=self._settings.scale_factor,
                                                   minNeighbors=self._settings.min_neighbors,
                                                   minSize=(low, low), maxSize=(high, high),
                                                   flags=cv2.CASCADE_SCALE_IMAGE)
            if len(boxes):
                best = max(boxes, key=lambda b: b[2] * b[3]).astype(np.float32) / factor
                best[:2] += (x, y)
                found.append(best)
        if not found:
            return np.zeros((0, 4), np.int32)
        return suppress_overlaps(np.rint(np.array(found)).astype(np.int32))


def suppress_overlaps(boxes: np.ndarray) -> np.ndarray:
    """Drop boxes that mostly overlap a larger one (neighbouring regions can find the same face)."""
    order = np.argsort(-(boxes[:, 2] * boxes[:, 3]))
    kept: list[np.ndarray] = []
    for index in order:
        box = boxes[index]
        if all(iou(box, other) < NMS_IOU for other in kept):
            kept.append(box)
    return np.array(kept, np.int32).reshape(-1, 4)

