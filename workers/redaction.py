"""Hiding faces in an image: one pure function, ``redact(frame, boxes, mode, scale) -> frame``.

Every image that leaves a worker (and every image the in-process pipeline hands to analyze, the Python API and
the console's upload) passes through it when ``[privacy] faces`` is not ``show``. ``solid`` fills each face
black, the only one of the three that leaves nothing to recover: blurred faces have been re-identified by neural
networks more than half the time (McPherson et al. 2016). ``blur`` and ``mosaic`` are for viewers who need to
see that a face is there and roughly where it looks.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

RedactionMode = Literal["show", "solid", "blur", "mosaic"]
MOSAIC_CELLS = 8  # a face is shown as at most this many cells across: too coarse for features
BLUR_SHRINK = 16  # blur: a face is shrunk to 1/this of its side and grown back, then smoothed


def grown_boxes(boxes: np.ndarray, scale: float, width: int, height: int) -> np.ndarray:
    """Boxes (N x 4, x y w h) grown by ``scale`` about their centres and clipped to the frame, as x0 y0 x1 y1;
    empty boxes (wholly outside the frame) are dropped."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if not len(boxes):
        return np.zeros((0, 4), np.int32)
    centre_x, centre_y = boxes[:, 0] + boxes[:, 2] / 2, boxes[:, 1] + boxes[:, 3] / 2
    half_w, half_h = boxes[:, 2] * scale / 2, boxes[:, 3] * scale / 2
    corners = np.stack([np.floor(centre_x - half_w), np.floor(centre_y - half_h),
                        np.ceil(centre_x + half_w), np.ceil(centre_y + half_h)], axis=1)
    corners[:, [0, 2]] = np.clip(corners[:, [0, 2]], 0, width)
    corners[:, [1, 3]] = np.clip(corners[:, [1, 3]], 0, height)
    corners = corners.astype(np.int32)
    return corners[(corners[:, 2] > corners[:, 0]) & (corners[:, 3] > corners[:, 1])]


def redact(frame: np.ndarray, boxes: np.ndarray, mode: RedactionMode, scale: float = 1.3) -> np.ndarray:
    """A copy of ``frame`` with every face box (grown by ``scale``) hidden by ``mode``; ``frame`` itself when
    the mode is ``show`` or there is no box. The input is never changed (the classifier's crops come from it)."""
    if mode == "show":
        return frame
    regions = grown_boxes(boxes, scale, frame.shape[1], frame.shape[0])
    if not len(regions):
        return frame
    shown = frame.copy()
    for x0, y0, x1, y1 in regions:
        area = shown[y0:y1, x0:x1]
        if mode == "solid":
            area[...] = 0
        elif mode == "mosaic":
            area[...] = _mosaic(area)
        else:
            area[...] = _blur(area)
    return shown


def _mosaic(area: np.ndarray) -> np.ndarray:
    height, width = area.shape[:2]
    cell = max(1, max(width, height) // MOSAIC_CELLS)
    small = cv2.resize(area, (max(1, width // cell), max(1, height // cell)), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_NEAREST)


def _blur(area: np.ndarray) -> np.ndarray:
    height, width = area.shape[:2]
    small = cv2.resize(area, (max(1, width // BLUR_SHRINK), max(1, height // BLUR_SHRINK)),
                       interpolation=cv2.INTER_AREA)
    grown = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    side = max(3, (min(width, height) // 4) | 1)
    return cv2.GaussianBlur(grown, (side, side), 0)
