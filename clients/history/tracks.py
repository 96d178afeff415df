"""Tracks, their events and thinned samples, from the results and ``tracks.<camera>`` messages of the bus.

The appeared / changed / disappeared logic is ``clients.changes.ChangeDetector``'s, the same that
``emotiond events --changes``, the web console and the MQTT bridge use, so the history records exactly the events
they show. This module adds what a database row needs: a key that stays unique across daemons and restarts, the
track's running means and coverage, and samples thinned to ``sample_hz`` per track.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from emotiond.clients.changes import ChangeDetector
from emotiond.clients.history.valence import valence
from emotiond.core.protocol import Face, Result, TracksEnded

LEFT = "left"  # end reason of a track whose face left the view (a result's ended_tracks)
_COMPACT = json.JSONEncoder(separators=(",", ":"))
# A sample is a plain tuple in this column order (the ``samples`` table's, after ``track``): thousands are made a
# second, and a tuple is cheaper to build than a dict and goes to the driver's executemany as it is.
SAMPLE_COLUMNS = ("camera", "t", "emotion", "confidence", "valence", "scores")
SAMPLE_T = SAMPLE_COLUMNS.index("t")


def _compact_encoder() -> Callable[[dict[str, float]], str]:
    """``_COMPACT.encode`` for a sample's flat scores, with the same output. ``JSONEncoder.encode`` builds a new
    C encoder on every call, which was most of its cost for thousands of samples a second: the C encoder is made
    once here, with ``_COMPACT``'s settings (no circular check: scores are one flat mapping of floats)."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # a Python without the C accelerator
        return _COMPACT.encode
    encode = make(None, _COMPACT.default, json.encoder.encode_basestring_ascii, None, _COMPACT.key_separator,
                  _COMPACT.item_separator, _COMPACT.sort_keys, _COMPACT.skipkeys, _COMPACT.allow_nan)
    return lambda scores: "".join(encode(scores, 0))


compact_json = _compact_encoder()


@dataclass(eq=False)
class OpenTrack:
    """One track as the writer knows it; ``id`` is its row's id once written."""

    key: str
    camera: str
    track_id: int
    worker: str
    model: str
    first_seen: float
    first_seq: int  # the camera's frame number at the first detection
    last_seen: float = 0.0
    last_seq: int = 0
    detections: int = 0
    samples: int = 0
    last_sample: float = float("-inf")
    score_sums: Counter[str] = field(default_factory=Counter)
    valence_sum: float = 0.0
    end_reason: str | None = None
    id: int | None = None

    def see(self, face: Face, t: float, seq: int, face_valence: float) -> None:
        self.last_seen = max(self.last_seen, t)
        self.last_seq = max(self.last_seq, seq)
        self.detections += 1
        sums = self.score_sums
        for label, score in face.scores.items():
            sums[label] += score
        self.valence_sum += face_valence

    def row(self) -> dict[str, Any]:
        """The track's row of the ``tracks`` table (without its id)."""
        count = max(1, self.detections)
        means = {label: round(total / count, 4) for label, total in sorted(self.score_sums.items())}
        span = max(1, self.last_seq - self.first_seq + 1)  # frames captured, so missed ones lower the coverage
        return {"camera": self.camera, "track_key": self.key, "track_id": self.track_id, "worker": self.worker,
                "first_seen": self.first_seen, "last_seen": max(self.last_seen, self.first_seen),
                "end_reason": self.end_reason, "dominant": max(means, key=means.__getitem__) if means else None,
                "mean_scores": json.dumps(means), "mean_valence": round(self.valence_sum / count, 4)
                if self.detections else None, "samples": self.samples,
                "coverage": round(min(1.0, self.detections / span), 4), "model": self.model}


@dataclass
class TrackRows:
    """What a batch of messages adds: tracks to insert or update, events and samples (each with its track)."""

    touched: dict[str, OpenTrack] = field(default_factory=dict)
    events: list[tuple[OpenTrack, dict[str, Any]]] = field(default_factory=list)
    samples: list[tuple[OpenTrack, tuple[Any, ...]]] = field(default_factory=list)  # rows in SAMPLE_COLUMNS order


class TrackBook:
    def __init__(self, sample_hz: float):
        self.sample_period = 1.0 / sample_hz
        self.changes = ChangeDetector()
        self.open: dict[tuple[str, int], OpenTrack] = {}
        self.ignored: set[tuple[str, int]] = set()  # tracks the database refused: left out until they end

    def feed(self, message: Result | TracksEnded, into: TrackRows, valences: list[float] | None = None) -> None:
        """Add what ``message`` brings to ``into``; ``valences`` are its faces' valences when the caller has them
        already (the writer computes them once for the tracks and the minute aggregates)."""
        if isinstance(message, Result):
            self._result(message, into, [valence(face.scores) for face in message.faces] if valences is None
                         else valences)
        events = list(self.changes.feed(message))
        faces = {face.track_id: face for face in message.faces if face.track_id is not None} if isinstance(
            message, Result) else {}
        for event in events:
            track = self.open.get((message.camera, event["track_id"]))
            if track is None:
                continue
            face = faces.get(event["track_id"])
            confidence = None if face is None else (
                face.smoothed_confidence if face.smoothed_confidence is not None else face.confidence)
            into.events.append((track, {"camera": message.camera, "t": float(event["at"]), "kind": event["event"],
                                        "emotion": event.get("emotion"), "previous": event.get("previous"),
                                        "reason": event.get("reason"), "confidence": confidence}))
        if isinstance(message, TracksEnded):
            self._end(message.camera, message.ended_tracks, message.reason, into)
        else:
            self._end(message.camera, message.extra.get("ended_tracks", ()), LEFT, into)

    def _result(self, result: Result, into: TrackRows, valences: list[float]) -> None:
        t = result.captured_at
        for face, face_valence in zip(result.faces, valences, strict=True):
            if face.track_id is None:
                continue
            key = (result.camera, face.track_id)
            if key in self.ignored:
                continue
            track = self.open.get(key)
            if track is None:
                track = self.open[key] = OpenTrack(
                    key=f"{result.camera}/{result.worker}/{face.track_id}/{round(t * 1000)}", camera=result.camera,
                    track_id=face.track_id, worker=result.worker, model=result.model, first_seen=t,
                    first_seq=result.seq)
            track.see(face, t, result.seq, face_valence)
            into.touched[track.key] = track
            if t - track.last_sample >= self.sample_period:
                track.last_sample = t
                track.samples += 1
                into.samples.append((track, (result.camera, t, face.emotion, face.confidence, round(face_valence, 4),
                                             compact_json(face.scores))))

    def _end(self, camera: str, track_ids: Any, reason: str, into: TrackRows) -> None:
        for track_id in track_ids:
            self.ignored.discard((camera, track_id))
            track = self.open.pop((camera, track_id), None)
            if track is not None:
                track.end_reason = reason or LEFT
                into.touched[track.key] = track

    def ignore(self, tracks: list[OpenTrack]) -> None:
        """Leave these tracks out from now on (their row was refused), so they cannot spoil every later batch."""
        for track in tracks:
            if self.open.get((track.camera, track.track_id)) is track:
                del self.open[(track.camera, track.track_id)]
                self.ignored.add((track.camera, track.track_id))

    def end_all(self, reason: str, into: TrackRows) -> None:
        """Every open track ends (the writer stops before the daemon said so)."""
        for (camera, track_id) in list(self.open):
            self._end(camera, (track_id,), reason, into)
