"""Missed seq numbers per camera, tolerant of the reordering that several workers cause.

Results of one camera arrive out of order by a few seq (each worker holds a couple of frames), so a
hole is only declared a gap once it is ``reorder_window`` seq behind the newest result or has stayed
open for ``max_wait`` seconds. A seq far below the newest one means the daemon restarted and counts
from 0 again: open holes are reported and counting starts over, recorded as a restart.

Holes are kept as ranges, so a long outage costs one entry, not one per frame. End of stream says how many
frames the camera had, so results missing at the end of a file are found too (``finish``).

``GapWatch`` adds the likely cause for a subscriber (``emotiond events``, ``emotiond.subscribe()``): a hole opened
while the subscription found its queue full means this reader fell behind and the bus dropped results for it;
otherwise the daemon published no result for those frames (a live camera's stale frames, a lost worker's).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from emotiond.core import protocol

READER_SLOW = "reader_slow"
NOT_PUBLISHED = "not_published"
CAUSES = {READER_SLOW: "this reader fell behind and the bus dropped results for it at its high-water mark",
          NOT_PUBLISHED: "the daemon published no result for these frames (a live camera's stale frames, or a "
                         "lost worker's)"}


@dataclass(frozen=True)
class Gap:
    camera: str
    first_seq: int
    last_seq: int
    at: float  # when the hole was first noticed (wall clock)
    cause: str = ""  # READER_SLOW or NOT_PUBLISHED where known

    @property
    def missed(self) -> int:
        return self.last_seq - self.first_seq + 1

    def to_dict(self) -> dict:
        data: dict[str, Any] = {"kind": "gap", "camera": self.camera, "first_seq": self.first_seq,
                                "last_seq": self.last_seq, "missed": self.missed, "at": self.at}
        if self.cause:
            data["cause"] = self.cause
        return data

    def describe(self) -> str:
        """One line for a person: the camera, the seq range and the likely cause."""
        text = f"camera {self.camera}: missed {self.missed} result(s), seq {self.first_seq}..{self.last_seq}"
        return f"{text}: {CAUSES[self.cause]}" if self.cause in CAUSES else text


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
    cause: str = ""


@dataclass
class _Camera:
    highest: int
    holes: list[_Hole] = field(default_factory=list)
    finished: bool = False  # end of stream seen: every hole was reported


class GapTracker:
    def __init__(self, reorder_window: int = 64, max_wait: float = 2.0):
        self.reorder_window = reorder_window
        self.max_wait = max_wait
        self._cameras: dict[str, _Camera] = {}
        self.duplicates = 0

    def see(self, camera: str, seq: int, now: float, wall: float, cause: str = "") -> list[Event]:
        """Record one result; returns the gaps (and restart) that became certain. ``cause`` goes with a hole this
        result reveals."""
        state = self._cameras.get(camera)
        if state is None or state.finished:
            self._cameras[camera] = _Camera(seq)
            return []
        events: list[Event] = []
        if seq > state.highest:
            if seq > state.highest + 1:
                state.holes.append(_Hole(state.highest + 1, seq - 1, now, wall, cause))
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
                parts = [_Hole(hole.first, seq - 1, hole.noticed, hole.noticed_wall, hole.cause),
                         _Hole(seq + 1, hole.last, hole.noticed, hole.noticed_wall, hole.cause)]
                state.holes[index:index + 1] = [p for p in parts if p.first <= p.last]
                return True
        return False

    def _settle(self, camera: str, state: _Camera, now: float) -> list[Event]:
        done = [h for h in state.holes
                if state.highest - h.last >= self.reorder_window or now - h.noticed >= self.max_wait]
        if done:
            state.holes = [h for h in state.holes if h not in done]
        return [Gap(camera, h.first, h.last, h.noticed_wall, h.cause) for h in done]

    def expire(self, now: float) -> list[Event]:
        """Holes that stayed open too long, for every camera (call this periodically)."""
        events: list[Event] = []
        for camera, state in self._cameras.items():
            events += self._settle(camera, state, now)
        return events

    @staticmethod
    def _close_camera(camera: str, state: _Camera) -> list[Event]:
        events: list[Event] = [Gap(camera, h.first, h.last, h.noticed_wall, h.cause) for h in state.holes]
        state.holes = []
        return events

    def finish(self, camera: str, frames: int, wall: float, cause: str = "") -> list[Event]:
        """End of stream after ``frames`` frames (seq 0 to frames - 1 from where this tracker started): every hole
        is final, and so are the results missing after the last one received."""
        state = self._cameras.get(camera)
        if state is None or state.finished:
            return []
        events = self._close_camera(camera, state)
        if frames > state.highest + 1:
            events.append(Gap(camera, state.highest + 1, frames - 1, wall, cause))
        state.finished = True
        return events

    def close(self) -> list[Event]:
        """Every hole still open, as gaps: at shutdown they are missing from the log for good."""
        events: list[Event] = []
        for camera, state in self._cameras.items():
            events += self._close_camera(camera, state)
        return events

    def pending(self) -> int:
        return sum(h.last - h.first + 1 for s in self._cameras.values() for h in s.holes)


class GapWatch:
    """The gaps of one subscriber's results, each with its likely cause.

    Feed it every result and end-of-stream status (``see``) with the time the subscription's drain that delivered
    it began (``Subscription.drain_started``) and the start of the newest drain that found the queue full
    (``Subscription.last_full_drain``): a hole whose camera's previous result came in that full drain or earlier
    was most likely lost by this reader.
    """

    def __init__(self, reorder_window: int = 64, max_wait: float = 2.0):
        self.tracker = GapTracker(reorder_window, max_wait)
        self.gaps = 0
        self.missed = 0
        self._last_drain: dict[str, float] = {}  # camera -> drain start of its previous result

    def _cause(self, camera: str, last_full_drain: float | None) -> str:
        previous = self._last_drain.get(camera)
        slow = last_full_drain is not None and previous is not None and last_full_drain >= previous
        return READER_SLOW if slow else NOT_PUBLISHED

    def see(self, message: Any, drain_started: float, last_full_drain: float | None) -> list[Gap]:
        """Gaps a result or an end-of-stream status makes certain (other messages: none)."""
        wall = time.time()
        if isinstance(message, protocol.Result):
            cause = self._cause(message.camera, last_full_drain)
            events = self.tracker.see(message.camera, message.seq, time.monotonic(), wall, cause)
            self._last_drain[message.camera] = drain_started
        elif isinstance(message, protocol.Status) and message.state == "eos":
            events = self.tracker.finish(message.camera, message.frames, wall,
                                         self._cause(message.camera, last_full_drain))
        else:
            return []
        return self._count(events)

    def expire(self) -> list[Gap]:
        """Holes open for too long (call this now and then, also while no message comes)."""
        return self._count(self.tracker.expire(time.monotonic()))

    def close(self) -> list[Gap]:
        """Every hole still open, as gaps (the subscription ends)."""
        return self._count(self.tracker.close())

    def _count(self, events: list[Event]) -> list[Gap]:
        gaps = [event for event in events if isinstance(event, Gap)]
        self.gaps += len(gaps)
        self.missed += sum(gap.missed for gap in gaps)
        return gaps
