"""A one-line progress bar on stderr for a whole run: files, frames, rate and ETA (no extra dependency,
redrawn at most 10 times a second). Messages printed through it do not collide with the bar."""

from __future__ import annotations

import sys
import time
from typing import IO


class RunProgress:
    def __init__(self, label: str, files_total: int, stream: IO[str] | None = None, width: int = 24,
                 enabled: bool = True):
        self.label = label
        self.files_total = files_total
        self.stream = stream or sys.stderr
        self.width = width
        self.enabled = enabled
        self.files_done = 0
        self.frames_done = 0
        self.frames_expected: int | None = None
        self.first_frame_at: float | None = None  # time.monotonic() when the first frame was done
        self._drawn_at = 0.0
        self._shown = False

    def update(self, files_done: int, frames_done: int, frames_expected: int | None) -> None:
        now = time.monotonic()
        if self.first_frame_at is None and frames_done > 0:
            self.first_frame_at = now
        self.files_done, self.frames_done, self.frames_expected = files_done, frames_done, frames_expected
        if self.enabled and now - self._drawn_at >= 0.1:
            self._draw(now)

    def rate(self, now: float | None = None) -> float:
        """Frames per second since the first frame was done (model loading does not count)."""
        if self.first_frame_at is None:
            return 0.0
        elapsed = (now or time.monotonic()) - self.first_frame_at
        return self.frames_done / elapsed if elapsed > 0 else 0.0

    def text(self, now: float | None = None) -> str:
        rate = self.rate(now)
        files = f"{self.files_done}/{self.files_total} files"
        if self.frames_expected:
            done = min(1.0, self.frames_done / self.frames_expected)
            filled = round(done * self.width)
            left = max(0, self.frames_expected - self.frames_done)
            eta = f"eta {left / rate:4.0f}s" if rate > 0 else "eta    ?"
            return (f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {done:4.0%} {files} "
                    f"{self.frames_done}/{self.frames_expected} frames {rate:5.1f}/s {eta}")
        return f"{self.label} {files} {self.frames_done} frames {rate:5.1f}/s"

    def _draw(self, now: float) -> None:
        self._drawn_at = now
        self.stream.write("\r" + self.text(now) + "\x1b[K")
        self.stream.flush()
        self._shown = True

    def message(self, line: str) -> None:
        """Print a line above the bar."""
        if self._shown:
            self.stream.write("\r\x1b[K")
        self.stream.write(line + "\n")
        self.stream.flush()
        if self._shown:
            self._draw(time.monotonic())

    def close(self) -> None:
        if self.enabled:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()
