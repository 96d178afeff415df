"""Failed logins counted per client address over a sliding minute, so a guesser locks out only itself."""

from __future__ import annotations

import math
import time
from collections import deque

FAILURES_PER_MINUTE = 10
WINDOW_SECONDS = 60.0
MAX_ADDRESSES = 10_000  # addresses tracked at once; beyond, the stalest are forgotten first


class LoginLimiter:
    def __init__(self, limit: int = FAILURES_PER_MINUTE, window: float = WINDOW_SECONDS):
        self.limit = limit
        self.window = window
        self._failures: dict[str, deque[float]] = {}
        self.refused = 0

    def _recent(self, address: str, now: float) -> deque[float] | None:
        failures = self._failures.get(address)
        if failures is None:
            return None
        while failures and now - failures[0] > self.window:
            failures.popleft()
        if not failures:
            del self._failures[address]
            return None
        return failures

    def retry_after(self, address: str) -> int | None:
        """Whole seconds ``address`` must wait before trying again, or None when it may try now."""
        now = time.monotonic()
        failures = self._recent(address, now)
        if failures is None or len(failures) < self.limit:
            return None
        self.refused += 1
        return max(1, math.ceil(self.window - (now - failures[0])))

    def failed(self, address: str) -> None:
        now = time.monotonic()
        failures = self._recent(address, now)
        if failures is None:
            if len(self._failures) >= MAX_ADDRESSES:
                stalest = min(self._failures, key=lambda a: self._failures[a][-1])
                del self._failures[stalest]
            failures = self._failures[address] = deque(maxlen=self.limit)
        failures.append(now)
