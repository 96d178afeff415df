"""Missed seq numbers per camera, tolerant of the reordering that several workers cause.

Results of one camera arrive out of order by a few seq (each worker holds a couple of frames), so a
hole is only declared a gap once it is ``reorder_window`` seq behind the newest result or has stayed
open for ``max_wait`` seconds. A seq far below the newest one means the daemon restarted and counts
from 0 again: open holes are reported and counting starts over, recorded as a restart.

Holes are kept as ranges, so a long outage costs one entry, not one per frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Gap:
    camera: str
    first_seq: int
    last_seq: int
    at: float  # when the hole was first noticed (wall clock)

    @property
    def missed(self) -> int:
        return self.last_seq - self.first_seq + 1

    def to_dict(self) -> dict:
        return {"kind": "gap", "camera": self.camera, "first_seq": self.first_seq, "last_seq": self.last_seq,
                "missed": self.missed, "at": self.at}


@dataclass(frozen=True)
class Restart:
    camera: str
    from_seq: int
    to_seq: int
    at: float

    def to_dict(self) -> dict:
        return {"kind": "restart", "camera": self.camera, "from_seq": self.from_seq, "to_seq": self.to_seq,
                "at": self.at}


Event = Gap | Restart


@dataclass
class _Hole:
    first: int
    last: int
    noticed: float  # monotonic
    noticed_wall: float


@dataclass
class _Camera:
    highest: int
    holes: list[_Hole] = field(default_factory=list)


class GapTracker:
    def __init__(self, reorder_window: int = 64, max_wait: float = 2.0):
        self.reorder_window = reorder_window
        self.max_wait = max_wait
        self._cameras: dict[str, _Camera] = {}
        self.duplicates = 0

    def see(self, camera: str, seq: int, now: float, wall: float) -> list[Event]:
        """Record one result; returns the gaps (and restart) that became certain."""
        state = self._cameras.get(camera)
        if state is None:
            self._cameras[camera] = _Camera(seq)
            return []
        events: list[Event] = []
        if seq > state.highest:
            if seq > state.highest + 1:
                state.holes.append(_Hole(state.highest + 1, seq - 1, now, wall))
            state.highest = seq
        elif not self._fill(state, seq):
            if state.highest - seq > self.reorder_window:
                events += self._close_camera(camera, state)
                events.append(Restart(camera, state.highest, seq, wall))
                self._cameras[camera] = _Camera(seq)
                return events
            self.duplicates += 1
        events += self._settle(camera, state, now)
        return events

    @staticmethod
    def _fill(state: _Camera, seq: int) -> bool:
        for index, hole in enumerate(state.holes):
            if hole.first <= seq <= hole.last:
                parts = [_Hole(hole.first, seq - 1, hole.noticed, hole.noticed_wall),
                         _Hole(seq + 1, hole.last, hole.noticed, hole.noticed_wall)]
                state.holes[index:index + 1] = [p for p in parts if p.first <= p.last]
                return True
        return False

    def _settle(self, camera: str, state: _Camera, now: float) -> list[Event]:
        done = [h for h in state.holes
                if state.highest - h.last >= self.reorder_window or now - h.noticed >= self.max_wait]
        if done:
            state.holes = [h for h in state.holes if h not in done]
        return [Gap(camera, h.first, h.last, h.noticed_wall) for h in done]

    def expire(self, now: float) -> list[Event]:
        """Holes that stayed open too long, for every camera (call this periodically)."""
        events: list[Event] = []
        for camera, state in self._cameras.items():
            events += self._settle(camera, state, now)
        return events

    @staticmethod
    def _close_camera(camera: str, state: _Camera) -> list[Event]:
        events: list[Event] = [Gap(camera, h.first, h.last, h.noticed_wall) for h in state.holes]
        state.holes = []
        return events

    def close(self) -> list[Event]:
        """Every hole still open, as gaps: at shutdown they are missing from the log for good."""
        events: list[Event] = []
        for camera, state in self._cameras.items():
            events += self._close_camera(camera, state)
        return events

    def pending(self) -> int:
        return sum(h.last - h.first + 1 for s in self._cameras.values() for h in s.holes)
