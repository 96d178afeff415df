"""What every face detector gives the pipeline, whichever backend finds the faces.

Backends live in their own modules (``workers.haar``, ``workers.blazeface``); ``workers.finder`` picks one by
``[detection] backend`` and decides, per backend, where to look in each frame.
"""

from __future__ import annotations

import math
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from emotiond.core.errors import UsageError
from emotiond.workers.tracking import iou

NMS_IOU = 0.4


class DetectorError(UsageError):
    """A detector that cannot start (missing model file, unusable OpenCV build): one line, exit 2."""


def no_boxes() -> np.ndarray:
    return np.zeros((0, 4), np.int32)


@dataclass(frozen=True)
class Found:
    """Faces in one frame, in full-frame pixels.

    ``boxes`` is N x 4 int32 (x, y, w, h). ``landmarks`` is N x K x 2 float32 keypoints when the detector gives
    them (BlazeFace: K = 6). ``rolls`` is N float32 degrees, the in-plane rotation that would make each face
    upright (positive: the face leans clockwise in the image), NaN where unknown.
    """

    boxes: np.ndarray = field(default_factory=no_boxes)
    landmarks: np.ndarray | None = None
    rolls: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.rolls is None:
            object.__setattr__(self, "rolls", np.full(len(self.boxes), np.nan, np.float32))

    def __len__(self) -> int:
        return len(self.boxes)

    def take(self, indices: list[int] | np.ndarray) -> Found:
        """The faces at ``indices``, in that order."""
        index = np.asarray(indices, np.intp).reshape(-1)
        landmarks = None if self.landmarks is None else self.landmarks[index]
        return Found(self.boxes[index].reshape(-1, 4), landmarks, self.rolls[index])  # type: ignore[index]


def roll_from_eyes(landmarks: np.ndarray) -> np.ndarray:
    """Per face, the angle (degrees) of the line from the image-left eye to the image-right eye (keypoints 0
    and 1): rotating the face by minus this angle levels the eyes."""
    if not len(landmarks):
        return np.zeros(0, np.float32)
    delta = landmarks[:, 1] - landmarks[:, 0]
    return np.degrees(np.arctan2(delta[:, 1], delta[:, 0])).astype(np.float32)


def rotate_points(points: np.ndarray, center: tuple[float, float], degrees: float) -> np.ndarray:
    """``points`` (... x 2) rotated by ``degrees`` about ``center`` with cv2.getRotationMatrix2D's convention
    (positive turns the image content counter-clockwise on screen)."""
    radians = math.radians(degrees)
    cos, sin = math.cos(radians), math.sin(radians)
    shifted = np.asarray(points, np.float32) - center
    x, y = shifted[..., 0], shifted[..., 1]
    return np.stack([cos * x + sin * y, -sin * x + cos * y], axis=-1) + center


class FaceDetector(Protocol):
    """A backend. ``pixels`` is the frame (BGR or grey), ``gray`` its grey version (computed once per frame)."""

    name: str

    def detect(self, pixels: np.ndarray, gray: np.ndarray) -> Found:
        """Every face in the whole frame."""
        ...

    def detect_async(self, pixels: np.ndarray, gray: np.ndarray) -> Future:
        """``detect`` on a background thread (a Future of Found); the arrays must not change until it is done."""
        ...

    def warm_up(self) -> None:
        """Build now what the first frames would otherwise build while live cameras wait (interpreters, cascades)."""
        ...


def suppress_overlaps(boxes: np.ndarray) -> np.ndarray:
    """Indices of the boxes to keep: drop boxes that mostly overlap a larger one (neighbouring regions can find
    the same face). Kept in order of decreasing area."""
    if not len(boxes):
        return np.zeros(0, np.intp)
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    order = np.argsort(-(boxes[:, 2] * boxes[:, 3]), kind="stable")
    kept: list[int] = []
    for index in order:
        if all(iou(boxes[index], boxes[other]) < NMS_IOU for other in kept):
            kept.append(int(index))
    return np.array(kept, np.intp)
