"""Micro-batching of face crops across frames: flush on size, on age, or when no more frames can come.

Only frames of files read whole wait for batch-mates: capture sends their next frame as soon as a credit is free,
so one arrives within a millisecond or so. A live camera's next frame is a frame period away; waiting for it would
only add latency, so a batch of live frames goes as soon as no other frame is waiting at the worker."""

from __future__ import annotations

from dataclasses import dataclass, field

from emotiond.core.protocol import Frame
from emotiond.workers.pipeline import Detection


@dataclass
class PendingFrame:
    frame: Frame
    detection: Detection
    timings_ms: dict[str, float] = field(default_factory=dict)
    cpu_ms: float = 0.0  # the worker's CPU for this frame so far: decode, grey, detection, crops


class MicroBatcher:
    def __init__(self, max_batch: int, max_wait_s: float):
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._pending: list[PendingFrame] = []
        self._faces = 0
        self._oldest: float | None = None
        self._all_live = True

    def add(self, item: PendingFrame, now: float, live: bool = False) -> None:
        self._pending.append(item)
        self._faces += len(item.detection.crops)
        self._all_live = self._all_live and live
        if self._oldest is None:
            self._oldest = now

    def __len__(self) -> int:
        return len(self._pending)

    def due(self, now: float, more_may_arrive: bool) -> bool:
        if not self._pending:
            return False
        if self._faces >= self.max_batch or not more_may_arrive or self._all_live:
            return True
        return self._oldest is not None and now - self._oldest >= self.max_wait_s

    def wait_left(self, now: float) -> float:
        if self._oldest is None:
            return self.max_wait_s
        return max(0.0, self.max_wait_s - (now - self._oldest))

    def take(self) -> list[PendingFrame]:
        """The pending frames, oldest first; the batcher is empty afterwards."""
        items, self._pending, self._faces, self._oldest = self._pending, [], 0, None
        self._all_live = True
        return items
