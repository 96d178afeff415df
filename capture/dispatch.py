"""Credit-based work distribution, without sockets so it can be reasoned about and tested alone.

Workers grant credits (``ready``) and return one with each acknowledgement (``done``, which also says what the
frame cost the worker). A frame goes only to a worker with a free credit, the least loaded first.

Fair service under overload: every live camera should lose about the same share of its frames, whatever its
place in the config or the worker it shares. So

* among the cameras with a frame waiting, the oldest frame goes first (round-robin breaks ties);
* a live camera served more than ``FAIR_SLACK`` above the least-served live camera that is waiting too (over
  the last few seconds, ``SHARE_SECONDS``; in deep overload, more than ``FAIR_SLACK_SHARE`` of that camera's
  share above it) waits its turn, even when its own worker is free: the busier worker's cameras are then not
  the only ones to drop, and the idle worker's CPU goes to the busy one. The price: where cameras cannot be
  split evenly (three on two workers), the less busy worker idles at times (``[capture] fair_share`` off
  serves each worker's cameras as fast as it goes instead).

With ``affinity`` (face tracking on), all frames of a camera go to one worker, which keeps that camera's tracks.
Cameras are spread over workers by their measured load (the worker's CPU per frame times the camera's frame
rate, so a four-face camera weighs about three one-face ones), and moved when loads change, but a camera stays
on its worker at least ``AFFINITY_SECONDS`` (each move restarts its tracks) unless that worker is lost, or it was
placed before its cost was known: that guess is corrected at the first rebalance with every cost measured.
Frames held by a worker that goes silent (or restarts) are re-queued for file sources and counted as dropped
for live ones.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
FrameKey = tuple[str, int]  # camera, seq

SHARE_SECONDS = 3.0  # time constant of the served-share and frame-rate averages
FAIR_SLACK = 0.02  # a camera served this much above the least-served waiting one waits its turn,
FAIR_SLACK_SHARE = 0.1  # or this share of that one's share when it is lower (deep overload: 3% against 5%)
MIN_OFFERED = 5.0  # frames (decayed) a camera must have offered before its share counts
COST_ALPHA = 0.1  # weight of the newest frame in a camera's cost average
AFFINITY_SECONDS = 30.0  # least time a camera stays on its worker before a rebalance may move it
REBALANCE_EVERY = 2.0  # seconds between load checks
REBALANCE_GAIN = 0.1  # a move must lower the busiest worker's load by this share of it
MIN_COSTED = 20  # frames a camera's cost must rest on before it counts in a rebalance


class Decaying:
    """A count that fades with time constant ``SHARE_SECONDS``: recent frames weigh most."""

    __slots__ = ("_at", "_value")

    def __init__(self) -> None:
        self._value = 0.0
        self._at = 0.0

    def value(self, now: float) -> float:
        return self._value * math.exp(-max(0.0, now - self._at) / SHARE_SECONDS)

    def add(self, amount: float, now: float) -> None:
        self._value = self.value(now) + amount
        self._at = max(self._at, now)


@dataclass
class CameraLoad:
    live: bool = True
    cost_ms: float = 0.0  # worker CPU per frame, averaged; 0 until measured
    costed: int = 0  # frames the average rests on
    offered: Decaying = field(default_factory=Decaying)
    served: Decaying = field(default_factory=Decaying)
    since: float = -math.inf  # when it was given to its current worker
    placed_blind: bool = True  # placed before its cost was known: the first rebalance may move it at once

    def share(self, now: float) -> float | None:
        """The share of its recent frames handed to a worker; None until it has offered a few."""
        offered = self.offered.value(now)
        return min(1.0, self.served.value(now) / offered) if offered >= MIN_OFFERED else None

    def rate(self, now: float) -> float:
        """Frames per second offered lately (1 until known, so a new camera still weighs something)."""
        return max(1.0, self.offered.value(now) / SHARE_SECONDS)


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
                 max_credits: int = 64, fair: bool = True):
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
        self._fair = fair
        self._owner: dict[str, bytes] = {}
        self.workers: dict[bytes, WorkerState[T]] = {}
        self.cameras: dict[str, CameraLoad] = {}
        self._retry: dict[str, deque[tuple[int, T]]] = {}
        self._turn: deque[str] = deque()
        self._next_rebalance = 0.0
        self._moves: list[tuple[str, bytes]] = []  # camera, the worker it left (whose tracks of it must end)
        self._now = 0.0  # the latest time any call was told

    # ------------------------------------------------------------ worker messages
    def ready(self, worker: bytes, pid: int, credits: int, now: float) -> None:
        self._now = max(self._now, now)
        state = self.workers.get(worker)
        if state is not None and state.pid != pid:
            self._lose(worker)
            state = None
        if state is None:
            self.workers[worker] = WorkerState(pid=pid, credits=credits, last_seen=now, announced=credits)
            self._rebalance(now, joined=True)
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

    def done(self, worker: bytes, camera: str, seq: int, now: float, cost_ms: float = 0.0) -> T | None:
        state = self.workers.get(worker)
        if state is None:
            return None
        state.last_seen = now
        frame = state.inflight.pop((camera, seq), None)
        if state.credits + len(state.inflight) < max(state.announced, self._max_credits):
            state.credits += 1
        if frame is not None and cost_ms > 0 and camera in self.cameras:
            known = self.cameras[camera]
            known.cost_ms = cost_ms if not known.cost_ms else (1 - COST_ALPHA) * known.cost_ms + COST_ALPHA * cost_ms
            known.costed += 1
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
    def add_camera(self, camera: str, live: bool = True) -> None:
        if camera not in self._turn:
            self._turn.append(camera)
            self._retry.setdefault(camera, deque())
            self.cameras[camera] = CameraLoad(live=live)

    def captured(self, camera: str, frames: int, now: float) -> None:
        """``frames`` new frames of ``camera`` were read (dispatched or not): the base of its served share."""
        self._now = max(self._now, now)
        if frames > 0 and camera in self.cameras:
            self.cameras[camera].offered.add(frames, now)

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

    # ------------------------------------------------------------ camera placement (affinity)
    def load(self, camera: str, now: float, typical_ms: float | None = None) -> float:
        """A camera's recent weight on its worker: ms of worker CPU per second of video. A camera not measured yet
        weighs ``typical_ms`` (the mean of the measured ones, worked out here when not given) per frame."""
        state = self.cameras.get(camera) or CameraLoad()
        cost = state.cost_ms or (self._typical_cost() if typical_ms is None else typical_ms)
        return cost * state.rate(now)

    def _typical_cost(self) -> float:
        costs = [c.cost_ms for c in self.cameras.values() if c.cost_ms > 0]
        return sum(costs) / len(costs) if costs else 1.0

    def worker_loads(self, now: float) -> dict[bytes, float]:
        loads = {w: 0.0 for w in self.workers}
        typical = self._typical_cost()
        for camera, owner in self._owner.items():
            if owner in loads:
                loads[owner] += self.load(camera, now, typical)
        return loads

    def placed_on(self, camera: str) -> bytes | None:
        """The worker this camera is placed on (affinity only), without placing it."""
        return self._owner.get(camera)

    def owner(self, camera: str) -> bytes | None:
        """The worker that keeps this camera (affinity only), chosen among the least loaded."""
        current = self._owner.get(camera)
        if current in self.workers or not self.workers:
            return current
        now = self._now
        loads = self.worker_loads(now)
        counts = {w: 0 for w in self.workers}
        for owner in self._owner.values():
            if owner in counts:
                counts[owner] += 1
        chosen = min(self.workers, key=lambda w: (loads[w], counts[w], -self.workers[w].credits, w))
        self._place(camera, chosen, now)
        return chosen

    def _place(self, camera: str, worker: bytes, now: float) -> None:
        self._owner[camera] = worker
        state = self.cameras.setdefault(camera, CameraLoad())
        state.since, state.placed_blind = now, state.costed < MIN_COSTED

    def rebalance(self, now: float) -> list[str]:
        """Move cameras between workers when measured loads drifted apart (called often; acts every
        ``REBALANCE_EVERY`` seconds). The cameras moved."""
        self._now = max(self._now, now)
        if now < self._next_rebalance:
            return []
        self._next_rebalance = now + REBALANCE_EVERY
        return self._rebalance(now, joined=False)

    def _rebalance(self, now: float, joined: bool) -> list[str]:
        """Greedy moves and swaps of single cameras from the busiest worker to the least busy, while each lowers
        the busier of the two by at least ``REBALANCE_GAIN``. When a worker joins, every camera may move (workers
        start at different times); otherwise only cameras past their ``AFFINITY_SECONDS`` and those placed before their
        cost was known (a guess, corrected once as soon as the costs are measured)."""
        if not self._affinity or len(self.workers) < 2:
            return []
        if not joined and any(self._uncosted(camera, now) for camera in self._owner):
            return []  # costs not known well enough yet to be worth restarting tracks for
        moved: list[str] = []
        for _ in range(len(self._owner)):
            loads = self.worker_loads(now)
            heavy = max(loads, key=lambda w: (loads[w], w))
            light = min(loads, key=lambda w: (loads[w], w))
            if heavy == light:
                break
            step = self._best_step(heavy, light, loads, now, joined)
            if step is None:
                break
            for camera, target in step:
                self._moves.append((camera, self._owner[camera]))
                self._place(camera, target, now)
                moved.append(camera)
        if not joined:  # every placement now rests on measured costs: the affinity holds them from here
            for camera in self._owner:
                self.cameras.setdefault(camera, CameraLoad()).placed_blind = False
        return moved

    def take_moves(self) -> list[tuple[str, bytes]]:
        """Cameras moved to another worker since the last call, each with the worker it left."""
        moves, self._moves = self._moves, []
        return moves

    def _uncosted(self, camera: str, now: float) -> bool:
        """A camera sending frames whose cost rests on too few of them (a camera that is down does not count)."""
        state = self.cameras.get(camera, CameraLoad())
        return state.costed < MIN_COSTED and state.offered.value(now) >= MIN_OFFERED

    def _best_step(self, heavy: bytes, light: bytes, loads: dict[bytes, float], now: float,
                   joined: bool) -> list[tuple[str, bytes]] | None:
        def movable(camera: str, worker: bytes) -> bool:
            state = self.cameras.get(camera, CameraLoad())
            return self._owner.get(camera) == worker and (joined or state.placed_blind
                                                           or now - state.since >= AFFINITY_SECONDS)

        typical = self._typical_cost()
        on_heavy = [(c, self.load(c, now, typical)) for c in self._owner if movable(c, heavy)]
        on_light = [(c, self.load(c, now, typical)) for c in self._owner if movable(c, light)]
        options: list[tuple[float, list[tuple[str, bytes]]]] = []
        for camera, weight in on_heavy:
            options.append((max(loads[heavy] - weight, loads[light] + weight), [(camera, light)]))
            for other, other_weight in on_light:
                if other_weight < weight:
                    delta = weight - other_weight
                    options.append((max(loads[heavy] - delta, loads[light] + delta),
                                    [(camera, light), (other, heavy)]))
        if not options:
            return None
        peak, step = min(options, key=lambda option: option[0])
        return step if peak <= loads[heavy] * (1 - REBALANCE_GAIN) else None

    def _worker_for(self, camera: str) -> bytes | None:
        if not self._affinity:
            return self.free_worker()
        owner = self.owner(camera)
        return owner if owner is not None and self.workers[owner].credits > 0 else None

    # ------------------------------------------------------------ choosing the next frame
    def pick(self, waiting: Callable[[str], float | bool | None], now: float | None = None
             ) -> tuple[str, bytes] | None:
        """The next camera to serve and the worker to take its frame, or None.

        ``waiting(camera)`` is when the camera's waiting frame was read (any clock, smaller is older), or
        None/False when it has none. Re-queued frames of file sources go before anything new.
        """
        now = self._now if now is None else now
        self._now = max(self._now, now)
        ready: list[tuple[float, int, str, bytes, float | None]] = []
        floor = math.inf  # least served share among waiting live cameras
        for position, camera in enumerate(self._turn):
            retry = bool(self._retry.get(camera))
            stamp = waiting(camera)
            if not retry and (stamp is None or stamp is False):
                continue
            share = self._share(camera, now)
            if share is not None:
                floor = min(floor, share)
            worker = self._worker_for(camera)
            if worker is not None:
                age = -math.inf if retry else float(stamp)  # type: ignore[arg-type]
                ready.append((age, position, camera, worker, share))
        slack = min(FAIR_SLACK, FAIR_SLACK_SHARE * floor) if floor < math.inf else 0.0
        for _, _, camera, worker, share in sorted(ready, key=lambda entry: entry[:2]):
            if self._fair and share is not None and share > floor + slack:
                continue  # a less-served camera is waiting: this one waits its turn
            self._turn.remove(camera)
            self._turn.append(camera)
            return camera, worker
        return None

    def _share(self, camera: str, now: float) -> float | None:
        state = self.cameras.get(camera)
        return state.share(now) if state is not None and state.live else None

    def take_retry(self, camera: str) -> tuple[int, T] | None:
        queue = self._retry.get(camera)
        return queue.popleft() if queue else None

    def assign(self, worker: bytes, camera: str, seq: int, frame: T, now: float | None = None) -> None:
        state = self.workers[worker]
        state.credits -= 1
        state.assigned += 1
        state.inflight[(camera, seq)] = frame
        known = self.cameras.get(camera)
        if known is not None:
            known.served.add(1, self._now if now is None else now)
