"""Which boxes to hide in a camera's frame: its faces now, and each face's last box for a few frames after the
detector lost it (``[privacy] hold_frames``), so a face is not shown while the detector blinks.

A tracked face is held by its track id (a track found again moves its mask with it); an untracked face (tracking
off) is held where it was. Frames are counted per camera as they are redacted, not by sequence number, so a live
camera that skipped frames still holds a lost face for ``hold_frames`` published frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

Key = int | tuple[int, int]  # a track id, or (frame number, index) for an untracked face


@dataclass
class _CameraHold:
    frames: int = 0
    boxes: dict[Key, tuple[np.ndarray, int]] = field(default_factory=dict)  # key -> last box, frame it was seen


class HeldFaces:
    def __init__(self, hold_frames: int):
        self.hold_frames = hold_frames
        self._cameras: dict[str, _CameraHold] = {}

    def update(self, camera: str, boxes: np.ndarray, track_ids: Sequence[int]) -> np.ndarray:
        """Remember this frame's faces; every box to hide in it (N x 4, x y w h)."""
        hold = self._cameras.setdefault(camera, _CameraHold())
        hold.frames += 1
        boxes = np.asarray(boxes).reshape(-1, 4)
        for index, box in enumerate(boxes):
            key: Key = int(track_ids[index]) if index < len(track_ids) else (hold.frames, index)
            hold.boxes[key] = (box, hold.frames)
        for key in [k for k, (_box, seen) in hold.boxes.items() if hold.frames - seen > self.hold_frames]:
            del hold.boxes[key]
        if not hold.boxes:
            return np.zeros((0, 4), np.int32)
        return np.stack([box for box, _seen in hold.boxes.values()]).astype(np.int32)

    def frames(self, camera: str) -> int:
        """Frames of the camera seen since it started (or was forgotten)."""
        hold = self._cameras.get(camera)
        return hold.frames if hold is not None else 0

    def forget(self, camera: str) -> None:
        """A camera that starts afresh (a new video, a camera that ended) holds nothing from before."""
        self._cameras.pop(camera, None)
