"""Frame-rate arithmetic shared by the encoders and the viewers: a pacer that never exceeds its rate on
average, and a meter that measures one."""

from __future__ import annotations

import collections

EARLY_FRACTION = 0.5  # a frame may come up to half an interval early (arrival jitter) and still count


class Pacer:
    """Lets through at most ``fps`` events per second on average, taking the first event due.

    The next slot advances from the previous slot, not from the arrival, so jitter neither lowers the rate
    (a frame a little early is taken) nor raises it (the schedule stays on its grid). After a pause the grid
    restarts at the next event.
    """

    def __init__(self, fps: float):
        self.interval = 1.0 / fps
        self._next: float | None = None

    def set_fps(self, fps: float) -> None:
        self.interval = 1.0 / fps

    def ready(self, now: float) -> bool:
        """True (and the slot is used) if an event at ``now`` may pass."""
        if self._next is None or now - self._next > self.interval:
            self._next = now + self.interval
            return True
        if now >= self._next - EARLY_FRACTION * self.interval:
            self._next += self.interval
            return True
        return False

    def wait(self, now: float) -> float:
        """Seconds until an event would pass (0 if now)."""
        if self._next is None:
            return 0.0
        return max(0.0, self._next - EARLY_FRACTION * self.interval - now)


class RateMeter:
    """Events per second over the last ``window`` seconds."""

    def __init__(self, window: float = 5.0):
        self.window = window
        self._times: collections.deque[float] = collections.deque()

    def add(self, now: float) -> None:
        self._times.append(now)
        self._trim(now)

    def rate(self, now: float) -> float:
        self._trim(now)
        if len(self._times) < 2:
            return 0.0
        span = now - self._times[0]
        return (len(self._times) - 1) / span if span > 0 else 0.0

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self.window:
            self._times.popleft()
