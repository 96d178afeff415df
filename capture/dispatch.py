"""Credit-based work distribution, without sockets so it can be reasoned about and tested alone.

Workers grant credits (``ready``) and return one with each acknowledgement (``done``). A frame goes only
to a worker with a free credit, the least loaded first; cameras are served round-robin so none starves.
With ``affinity`` (face tracking on), all frames of a camera go to one worker, which keeps that camera's
tracks; cameras are spread evenly over workers and move to another worker only when theirs is lost.
Frames held by a worker that goes silent (or restarts) are re-queued for file sources and counted as
dropped for live ones.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
FrameKey = tuple[str, int]  # camera, seq


@dataclass
class WorkerState(Generic[T]):
    pid: int
    credits: int
    last_seen: float
    inflight: dict[FrameKey, T] = field(default_factory=dict)
    assigned: int = 0
    announced: int = 0  # most credits the worker has granted


class Dispatcher(Generic[T]):
    def __init__(self, worker_timeout: float, on_lost: Callable[[str, int, T], None], affinity: bool = False,
                 max_credits: int = 64):
        """``on_lost(camera, seq, frame)`` decides what happens to frames of a vanished worker.

        ``max_credits`` bounds what ``done`` messages can give back, so a peer repeating them (buggy or hostile)
        cannot hold more frames than the larger of what it announced and the configured per-worker credits.
        (The larger, not the smaller: after a capture restart a worker's heartbeat announces 0 free credits
        while it still holds frames, and its acknowledgements must free it up to the configured credits.)
        """
        self._max_credits = max_credits
        self._timeout = worker_timeout
        self._on_lost = on_lost
        self._affinity = affinity
        self._owner: dict[str, bytes] = {}
        self.workers: dict[bytes, WorkerState[T]] = {}
        self._retry: dict[str, deque[tuple[int, T]]] = {}
        self._turn: deque[str] = deque()

    # ------------------------------------------------------------ worker messages
    def ready(self, worker: bytes, pid: int, credits: int, now: float) -> None:
        state = self.workers.get(worker)
        if state is not None and state.pid != pid:
            self._lose(worker)
            state = None
        if state is None:
            self.workers[worker] = WorkerState(pid=pid, credits=credits, last_seen=now, announced=credits)
            self._rebalance()
        else:
            state.credits = max(0, credits - len(state.inflight))
            state.announced = max(state.announced, credits)
            state.last_seen = now

    def heartbeat(self, worker: bytes, pid: int, free_credits: int, now: float) -> None:
        state = self.workers.get(worker)
        if state is None or state.pid != pid:
            self.ready(worker, pid, free_credits, now)
        else:
            state.last_seen = now

    def done(self, worker: bytes, camera: str, seq: int, now: float) -> T | None:
        state = self.workers.get(worker)
        if state is None:
            return None
        state.last_seen = now
        frame = state.inflight.pop((camera, seq), None)
        if state.credits + len(state.inflight) < max(state.announced, self._max_credits):
            state.credits += 1
        return frame

    def expire(self, now: float) -> list[bytes]:
        """Forget workers silent for longer than the timeout; their frames go to ``on_lost``."""
        gone = [w for w, s in self.workers.items() if now - s.last_seen > self._timeout]
        for worker in gone:
            self._lose(worker)
        return gone

    def unreachable(self, worker: bytes) -> None:
        self._lose(worker)

    def _lose(self, worker: bytes) -> None:
        state = self.workers.pop(worker, None)
        if state is None:
            return
        self._owner = {camera: owner for camera, owner in self._owner.items() if owner != worker}
        for (camera, seq), frame in sorted(state.inflight.items(), key=lambda kv: kv[0][1]):
            self._on_lost(camera, seq, frame)

    # ------------------------------------------------------------ frames
    def add_camera(self, camera: str) -> None:
        if camera not in self._turn:
            self._turn.append(camera)
            self._retry.setdefault(camera, deque())

    def requeue(self, camera: str, seq: int, frame: T) -> None:
        self._retry.setdefault(camera, deque()).append((seq, frame))

    def retry_pending(self, camera: str) -> int:
        return len(self._retry.get(camera, ()))

    def inflight(self, camera: str) -> int:
        return sum(1 for s in self.workers.values() for key in s.inflight if key[0] == camera)

    def free_worker(self) -> bytes | None:
        best: tuple[int, int, bytes] | None = None
        for worker, state in self.workers.items():
            if state.credits > 0:
                rank = (-state.credits, state.assigned, worker)
                if best is None or rank < best:
                    best = rank
        return best[2] if best else None

    def owner(self, camera: str) -> bytes | None:
        """The worker that keeps this camera (affinity only), chosen among the least busy."""
        current = self._owner.get(camera)
        if current in self.workers or not self.workers:
            return current
        load = {w: 0 for w in self.workers}
        for owner in self._owner.values():
            if owner in load:
                load[owner] += 1
        chosen = min(self.workers, key=lambda w: (load[w], -self.workers[w].credits, w))
        self._owner[camera] = chosen
        return chosen

    def _rebalance(self) -> None:
        """Spread cameras evenly when a worker joins (workers start at different times)."""
        if not self._affinity:
            return
        owned: dict[bytes, list[str]] = {w: [] for w in self.workers}
        for camera, owner in self._owner.items():
            if owner in owned:
                owned[owner].append(camera)
        while True:
            busiest = max(owned, key=lambda w: len(owned[w]))
            idlest = min(owned, key=lambda w: len(owned[w]))
            if len(owned[busiest]) - len(owned[idlest]) <= 1:
                return
            camera = owned[busiest].pop()
            owned[idlest].append(camera)
            self._owner[camera] = idlest

    def _worker_for(self, camera: str) -> bytes | None:
        if not self._affinity:
            return self.free_worker()
        owner = self.owner(camera)
        return owner if owner is not None and self.workers[owner].credits > 0 else None

    def pick(self, has_frame: Callable[[str], bool]) -> tuple[str, bytes] | None:
        """The next camera, in round-robin order, with a frame waiting and a worker able to take it."""
        for _ in range(len(self._turn)):
            camera = self._turn[0]
            self._turn.rotate(-1)
            if not (self._retry.get(camera) or has_frame(camera)):
                continue
            worker = self._worker_for(camera)
            if worker is not None:
                return camera, worker
        return None

    def take_retry(self, camera: str) -> tuple[int, T] | None:
        queue = self._retry.get(camera)
        return queue.popleft() if queue else None

    def assign(self, worker: bytes, camera: str, seq: int, frame: T) -> None:
        state = self.workers[worker]
        state.credits -= 1
        state.assigned += 1
        state.inflight[(camera, seq)] = frame
