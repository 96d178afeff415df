"""Privacy masks: polygons of a source (``[[sources]] masks``, fractions of the frame) filled black in each frame
as it is read, before it is queued, so masked pixels never reach the bus, no worker detects a face inside one, and
every image made downstream (viewer, console, MQTT snapshots) shows them filled, whatever ``[privacy] faces`` says.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

FILL = 0  # black, like the solid face redaction


class PrivacyMasks:
    """Fills one source's polygons; their pixel outlines are computed once per frame size."""

    def __init__(self, polygons: Sequence[Sequence[tuple[float, float]]]):
        self._relative = [np.asarray(polygon, np.float64).reshape(-1, 2) for polygon in polygons]
        self._outlines: dict[tuple[int, int], list[np.ndarray]] = {}

    def __bool__(self) -> bool:
        return bool(self._relative)

    def outlines(self, width: int, height: int) -> list[np.ndarray]:
        """Each polygon in pixels of a ``width`` x ``height`` frame (int32 points, as cv2.fillPoly takes them)."""
        key = (width, height)
        if key not in self._outlines:
            scale = np.array([width, height], np.float64)
            self._outlines[key] = [np.rint(polygon * scale).astype(np.int32) for polygon in self._relative]
        return self._outlines[key]

    def apply(self, frame: np.ndarray) -> np.ndarray:
        """``frame`` with every polygon filled; filled in place when the frame is writable (a reader's fresh
        frame), else in a copy."""
        if not self._relative:
            return frame
        if not frame.flags.writeable or not frame.flags.c_contiguous:
            frame = np.ascontiguousarray(frame).copy()
        fill = (FILL,) * (frame.shape[2] if frame.ndim == 3 else 1)
        cv2.fillPoly(frame, self.outlines(frame.shape[1], frame.shape[0]), fill)
        return frame
