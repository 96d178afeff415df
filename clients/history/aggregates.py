"""Per-minute, per-camera aggregates, built from the live results and gaps as each minute closes.

A minute holds face-seconds per emotion (each face in a result counts for the time that result stands for: the
interval since the camera's previous frame, capped at ``MAX_FRAME_SECONDS``), the valence weighted the same way,
the distinct faces (tracks) seen, and the frames analysed and missed (holes in the camera's seq numbers). Missed
frames make coverage, so an outage reads as a gap, never as "neutral". Aggregates are never recomputed from
samples: retention may already have removed them, and minutes are kept for ever.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from emotiond.clients.history.valence import valence
from emotiond.core.protocol import Result

MINUTE = 60.0
MAX_FRAME_SECONDS = 1.0  # a frame stands for at most this long: a longer silence is not face-time
CLOSE_AFTER_SECONDS = 5.0  # a minute closes this long after its end (late results of several workers still count)


def minute_start(t: float) -> float:
    return math.floor(t / MINUTE) * MINUTE


@dataclass
class _Minute:
    camera: str
    start: float
    model: str = ""
    tracks: set[int] = field(default_factory=set)
    untracked_peak: int = 0  # most faces without a track id in one frame (tracking off)
    face_seconds: Counter[str] = field(default_factory=Counter)
    valence_seconds: float = 0.0
    analysed: int = 0
    missed: int = 0

    def row(self) -> dict[str, Any]:
        return {"camera": self.camera, "zone": "", "start": self.start,
                "faces": len(self.tracks) + self.untracked_peak,
                "face_seconds": {label: round(seconds, 4) for label, seconds in sorted(self.face_seconds.items())},
                "valence_seconds": round(self.valence_seconds, 4), "frames_analysed": self.analysed,
                "frames_missed": self.missed, "model": self.model}


@dataclass
class _Clock:
    last: float | None = None  # newest captured_at of the camera
    interval: float = 0.0  # the last interval between its frames that looked regular


class MinuteAggregator:
    """Open minutes per camera; ``closed(now)`` hands over those that ended, as rows of the ``minutes`` table
    (``face_seconds`` as a dict: the writer merges and serialises)."""

    def __init__(self, close_after: float = CLOSE_AFTER_SECONDS):
        self.close_after = close_after
        self._open: dict[tuple[str, float], _Minute] = {}
        self._clocks: dict[str, _Clock] = {}

    def _minute(self, camera: str, t: float) -> _Minute:
        key = (camera, minute_start(t))
        minute = self._open.get(key)
        if minute is None:
            minute = self._open[key] = _Minute(camera, key[1])
        return minute

    def frame_seconds(self, camera: str, t: float) -> float:
        """The time one frame of ``camera`` captured at ``t`` stands for."""
        clock = self._clocks.setdefault(camera, _Clock())
        if clock.last is not None and 0.0 < t - clock.last <= MAX_FRAME_SECONDS:
            clock.interval = t - clock.last
        if clock.last is None or t > clock.last:
            clock.last = t
        return clock.interval

    def add_result(self, result: Result, valences: list[float] | None = None) -> None:
        """Count ``result`` in its minute; ``valences`` are its faces' valences when the caller has them already."""
        if valences is None:
            valences = [valence(face.scores) for face in result.faces]
        minute = self._minute(result.camera, result.captured_at)
        minute.model = result.model or minute.model
        minute.analysed += 1
        seconds = self.frame_seconds(result.camera, result.captured_at)
        untracked = 0
        for face, face_valence in zip(result.faces, valences, strict=True):
            if face.track_id is None:
                untracked += 1
            else:
                minute.tracks.add(face.track_id)
            if seconds > 0.0:
                minute.face_seconds[face.smoothed_emotion or face.emotion] += seconds
                minute.valence_seconds += face_valence * seconds
        minute.untracked_peak = max(minute.untracked_peak, untracked)

    def add_missed(self, camera: str, frames: int, t: float) -> None:
        """``frames`` results of ``camera`` never arrived; they are counted in the minute of ``t``."""
        self._minute(camera, t).missed += frames

    def closed(self, now: float) -> list[dict[str, Any]]:
        """Rows of the minutes that ended at least ``close_after`` before ``now`` (wall clock)."""
        done = [key for key in self._open if key[1] + MINUTE + self.close_after <= now]
        return [self._open.pop(key).row() for key in sorted(done, key=lambda k: (k[1], k[0]))]

    def flush(self) -> list[dict[str, Any]]:
        """Every open minute, as it stands (the writer is stopping; a later writer adds to the same rows)."""
        rows = [minute.row() for _, minute in sorted(self._open.items(), key=lambda kv: (kv[0][1], kv[0][0]))]
        self._open.clear()
        return rows


def merge(existing: dict[str, Any] | None, row: dict[str, Any]) -> dict[str, Any]:
    """Two partial rows of one minute (written before and after a restart, or by a late result) as one: counts and
    seconds add up. ``faces`` adds too: the same person across a restart gets a new track anyway."""
    if existing is None:
        return row
    seconds: Counter[str] = Counter(_seconds(existing["face_seconds"]))
    seconds.update(_seconds(row["face_seconds"]))
    return {**row, "faces": existing["faces"] + row["faces"],
            "face_seconds": {label: round(value, 4) for label, value in sorted(seconds.items())},
            "valence_seconds": round(existing["valence_seconds"] + row["valence_seconds"], 4),
            "frames_analysed": existing["frames_analysed"] + row["frames_analysed"],
            "frames_missed": existing["frames_missed"] + row["frames_missed"],
            "model": row["model"] or existing["model"]}


def _seconds(value: Any) -> dict[str, float]:
    return json.loads(value) if isinstance(value, str) else dict(value)
