"""A one-line progress bar on stderr for long videos (no extra dependency, redrawn at most 10 times/s)."""

from __future__ import annotations

import sys
import time
from typing import IO


class ProgressBar:
    def __init__(self, label: str, total: int | None, stream: IO[str] | None = None, width: int = 30):
        self.label = label
        self.total = total
        self.stream = stream or sys.stderr
        self.width = width
        self.count = 0
        self._started = time.monotonic()
        self._drawn = 0.0

    def update(self, n: int = 1) -> None:
        self.count += n
        now = time.monotonic()
        if now - self._drawn >= 0.1:
            self._draw(now)

    def _draw(self, now: float) -> None:
        self._drawn = now
        elapsed = max(1e-6, now - self._started)
        rate = self.count / elapsed
        if self.total:
            done = min(1.0, self.count / self.total)
            filled = round(done * self.width)
            eta = (self.total - self.count) / rate if rate > 0 else 0.0
            text = (f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {done:4.0%} "
                    f"{self.count}/{self.total} frames {rate:5.1f}/s eta {eta:4.0f}s")
        else:
            text = f"{self.label} {self.count} frames {rate:5.1f}/s"
        self.stream.write("\r" + text + "\x1b[K")
        self.stream.flush()

    def close(self) -> None:
        self._draw(time.monotonic())
        self.stream.write("\n")
        self.stream.flush()
