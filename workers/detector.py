"""Haar face detection. One cascade per process, never shared between threads (OpenCV's rule)."""

from __future__ import annotations

import cv2
import numpy as np

from daemon.settings import DetectionSettings

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
