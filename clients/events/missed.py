"""Missed results, told on stderr, per camera, with the seq range and the likely cause.

Kept apart from the printing loop of ``emotiond events`` so other stderr notices sit beside it.

Results this reader lost (it fell behind) are told one line per gap, as each becomes certain: the reader can do
something about them. Results the daemon never published (a live camera's stale frames, which it drops and counts
by design under load) can come many times a second, so they are summed per camera and told at most once per
``every`` seconds, and once more at exit.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from emotiond.clients.gaps import CAUSES, NOT_PUBLISHED, Gap


@dataclass
class _Unpublished:
    first_seq: int
    last_seq: int
    missed: int = 0
    gaps: int = 0


class MissedResults:
    """Counts what ``emotiond events`` missed and says so on stderr."""

    def __init__(self, stream: TextIO | None = None, every: float = 10.0,
                 clock: Callable[[], float] = time.monotonic):
        self._stream = stream
        self._every = every
        self._clock = clock
        self._pending: dict[str, _Unpublished] = {}
        self._last_told: dict[str, float] = {}
        self.missed = 0
        self.cameras: set[str] = set()

    def report(self, gap: Gap) -> None:
        self.missed += gap.missed
        self.cameras.add(gap.camera)
        if gap.cause != NOT_PUBLISHED:
            self._write(gap.describe())
            return
        pending = self._pending.setdefault(gap.camera, _Unpublished(gap.first_seq, gap.last_seq))
        pending.first_seq = min(pending.first_seq, gap.first_seq)
        pending.last_seq = max(pending.last_seq, gap.last_seq)
        pending.missed += gap.missed
        pending.gaps += 1
        last = self._last_told.get(gap.camera)
        if last is None or self._clock() - last >= self._every:
            self._tell(gap.camera)

    def flush(self) -> None:
        """Tell every summed-up gap not yet told (at exit)."""
        for camera in list(self._pending):
            self._tell(camera)

    def _tell(self, camera: str) -> None:
        pending = self._pending.pop(camera)
        self._last_told[camera] = self._clock()
        gaps = f" in {pending.gaps} gaps" if pending.gaps > 1 else ""
        self._write(f"camera {camera}: missed {pending.missed} result(s){gaps}, seq "
                    f"{pending.first_seq}..{pending.last_seq}: {CAUSES[NOT_PUBLISHED]}")

    def _write(self, line: str) -> None:
        stream = self._stream or sys.stderr
        stream.write(f"emotiond events: {line}\n")
        stream.flush()

    def summary(self) -> str:
        return (f"emotiond events: {self.missed} result(s) missed on {len(self.cameras)} camera(s); the output is "
                "incomplete")
