"""What every engine of ``emotiond analyze`` speaks: units in with ``submit``, events out with ``poll``.

Events are progress (frames done in a unit), a unit that starts over because its worker died, and finished
units. Every engine runs units with the same ``analyze.unit.run_unit``, so results do not depend on it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Protocol

from emotiond.clients.analyze.plan import WorkUnit
from emotiond.clients.analyze.unit import UnitResult

MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class Progress:
    index: int
    frames: int


@dataclass(frozen=True)
class Retry:
    """A unit starts over elsewhere: its frames so far no longer count."""

    index: int
    reason: str


@dataclass(frozen=True)
class Done:
    result: UnitResult


Event = Progress | Retry | Done


class Engine(Protocol):
    description: str

    @property
    def slots(self) -> int:
        """How many units can run at once (the caller keeps about twice that many submitted)."""

    def submit(self, unit: WorkUnit) -> None: ...

    def poll(self, timeout: float) -> list[Event]: ...

    def close(self) -> None: ...


def failed(unit: WorkUnit, message: str) -> UnitResult:
    return UnitResult(unit.index, unit.input_index, kind=unit.kind, error=message)


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
