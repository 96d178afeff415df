"""Missed results, told on stderr: one line per gap, per camera, with the seq range and the likely cause.

Kept apart from the printing loop of ``emotiond events`` so other stderr notices sit beside it.
"""

from __future__ import annotations

import sys
from typing import TextIO

from emotiond.clients.gaps import Gap


class MissedResults:
    """Counts what ``emotiond events`` missed and says so on stderr as each gap becomes certain."""

    def __init__(self, stream: TextIO | None = None):
        self._stream = stream
        self.missed = 0
        self.cameras: set[str] = set()

    def report(self, gap: Gap) -> None:
        self.missed += gap.missed
        self.cameras.add(gap.camera)
        stream = self._stream or sys.stderr
        stream.write(f"emotiond events: {gap.describe()}\n")
        stream.flush()

    def summary(self) -> str:
        return (f"emotiond events: {self.missed} result(s) missed on {len(self.cameras)} camera(s); the output is "
                "incomplete")
