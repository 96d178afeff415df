"""Aggregates-only publishing (``[privacy] publish = "aggregates"``): per camera and window, counts and shares.

In this mode nothing per face leaves the worker. Each frame's faces are folded into its camera's current window;
a window closes when a frame of a later window arrives, when its end has passed by ``GRACE_SECONDS`` (a camera
that went quiet), or early when the camera ends or moves (``partial``). Windows are aligned to multiples of
``window_seconds`` since the epoch, so windows of different cameras and workers line up.

A window is suppressed when it saw fewer than ``min_group`` distinct faces, as Viva Insights does for groups
under five: a reader sees that something was withheld, never a small count that could single someone out.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from emotiond.core import protocol

GRACE_SECONDS = 2.0  # after a window's end, frames captured in it may still be in flight


@dataclass
class _Window:
    start: float
    frames: int = 0
    tracks: set[int] = field(default_factory=set)
    peak: int = 0  # most faces in one frame: the count when faces carry no track ids
    emotions: collections.Counter[str] = field(default_factory=collections.Counter)


class WindowAggregator:
    def __init__(self, window_seconds: float, min_group: int, worker: str):
        self.window_seconds = window_seconds
        self.min_group = min_group
        self.worker = worker
        self._open: dict[str, _Window] = {}
        self._closed_until: dict[str, float] = {}  # end of each camera's last published window

    def _start_of(self, at: float) -> float:
        return math.floor(at / self.window_seconds) * self.window_seconds

    def add(self, camera: str, captured_at: float, faces: Sequence[protocol.Face]) -> list[protocol.Aggregate]:
        """Fold one frame in; the windows this frame closed (its camera's previous one, at most)."""
        closed: list[protocol.Aggregate] = []
        at = max(captured_at, self._closed_until.get(camera, 0.0))  # a late frame counts in the next window
        start = self._start_of(at)
        window = self._open.get(camera)
        if window is not None and window.start != start:
            closed.append(self._close(camera, window, window.start + self.window_seconds, partial=False))
            window = None
        if window is None:
            window = self._open[camera] = _Window(start)
        window.frames += 1
        window.peak = max(window.peak, len(faces))
        for face in faces:
            if face.track_id is not None:
                window.tracks.add(face.track_id)
            window.emotions[face.smoothed_emotion or face.emotion] += 1
        return closed

    def due(self, now: float) -> list[protocol.Aggregate]:
        """Windows whose end passed more than GRACE_SECONDS ago (their camera went quiet)."""
        return [self._close(camera, window, window.start + self.window_seconds, partial=False)
                for camera, window in list(self._open.items())
                if now >= window.start + self.window_seconds + GRACE_SECONDS]

    def end(self, camera: str, at: float) -> list[protocol.Aggregate]:
        """The camera ended or moved to another worker: its open window goes out now, marked partial."""
        window = self._open.get(camera)
        if window is None:
            return []
        return [self._close(camera, window, min(max(at, window.start), window.start + self.window_seconds),
                            partial=True)]

    def end_all(self, at: float) -> list[protocol.Aggregate]:
        return [aggregate for camera in list(self._open) for aggregate in self.end(camera, at)]

    def _close(self, camera: str, window: _Window, end: float, partial: bool) -> protocol.Aggregate:
        del self._open[camera]
        self._closed_until[camera] = end
        faces = len(window.tracks) if window.tracks else window.peak
        suppressed = faces < self.min_group
        observations = sum(window.emotions.values())
        shares = {} if suppressed or not observations else {
            label: round(count / observations, 4) for label, count in sorted(window.emotions.items())}
        return protocol.Aggregate(camera=camera, start=window.start, end=end, window_seconds=self.window_seconds,
                                  frames=window.frames, suppressed=suppressed, faces=None if suppressed else faces,
                                  shares=shares, partial=partial, worker=self.worker)
