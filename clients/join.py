"""Pairing frames with their results by (camera, seq), so a box is never drawn on the wrong frame.

Workers publish a frame just before its result, but several workers interleave, the bus may drop either
message at its high-water mark, and a restarted daemon starts counting seq from 0 again. The joiner keeps
a few unmatched frames and results per camera and emits a pair only when both halves with the same key
have arrived. Anything left unmatched is eventually evicted, never paired with a neighbour.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from emotiond.core.protocol import Frame, Result

Key = tuple[str, int]


@dataclass(frozen=True)
class Pair:
    frame: Frame
    result: Result


class FrameResultJoiner:
    """Holds at most ``capacity`` unmatched frames and results (each) and pairs them by key."""

    def __init__(self, capacity: int = 32):
        self.capacity = capacity
        self._frames: OrderedDict[Key, Frame] = OrderedDict()
        self._results: OrderedDict[Key, Result] = OrderedDict()
        self.evicted_frames = 0
        self.evicted_results = 0

    def add_frame(self, frame: Frame) -> Pair | None:
        key = (frame.header.camera, frame.header.seq)
        result = self._results.pop(key, None)
        if result is not None:
            return Pair(frame, result)
        self._frames[key] = frame
        while len(self._frames) > self.capacity:
            self._frames.popitem(last=False)
            self.evicted_frames += 1
        return None

    def add_result(self, result: Result) -> Pair | None:
        key = (result.camera, result.seq)
        frame = self._frames.pop(key, None)
        if frame is not None:
            return Pair(frame, result)
        self._results[key] = result
        while len(self._results) > self.capacity:
            self._results.popitem(last=False)
            self.evicted_results += 1
        return None

    def reset(self, camera: str | None = None) -> None:
        """Forget pending halves (all, or one camera's), e.g. when its seq numbering restarts."""
        for store in (self._frames, self._results):
            for key in [k for k in store if camera is None or k[0] == camera]:
                del store[key]

    def pending(self) -> tuple[int, int]:
        return len(self._frames), len(self._results)


class SeqCounter:
    """Counts seq numbers skipped between successive displayed pairs of one camera (the HUD drop count).

    A seq far below the last one means the daemon restarted; counting starts again from there.
    """

    def __init__(self, restart_window: int = 64):
        self._last: dict[str, int] = {}
        self._restart_window = restart_window
        self.drops = 0
        self.restarts = 0

    def forget(self, camera: str | None = None) -> None:
        """Drop the last seq (of one camera or all); the next one seen starts a fresh count."""
        if camera is None:
            self._last.clear()
        else:
            self._last.pop(camera, None)

    def see(self, camera: str, seq: int) -> bool:
        """Record a displayed seq; returns False for a stale (older) one that should not be shown."""
        last = self._last.get(camera)
        if last is None:
            self._last[camera] = seq
            return True
        if seq > last:
            self.drops += seq - last - 1
            self._last[camera] = seq
            return True
        if last - seq > self._restart_window:
            self.restarts += 1
            self._last[camera] = seq
            return True
        return False
