"""Frigate-shaped track events for MQTT: ``{"type": "new" | "update" | "end", "before": {...}, "after": {...}}``.

Which track appeared, changed its smoothed emotion or ended comes from ``ChangeDetector`` (the workers' trackers
set ``track_id``, ``smoothed_emotion`` and ``ended_tracks``). This module adds what Frigate's shape needs around
it: each track's start time, latest box and scores, its top score, the state last published, and the rate rule:
an ``update`` goes out when the smoothed emotion changes, otherwise at most every ``update_interval`` seconds.

Tracks end when a result says so, when their camera stops producing frames (a ``TracksEnded`` message: end of
stream, down, daemon stopping, worker lost), or, should that message be lost too, after ``STALE_SECONDS`` without a
sighting, so the live set stays true and bounded.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from emotiond.clients.changes import ChangeDetector
from emotiond.core.protocol import Face, Result, TracksEnded

log = logging.getLogger(__name__)
STALE_SECONDS = 10.0
MAX_TRACKS_PER_CAMERA = 256


def face_emotion(face: Face) -> tuple[str, float]:
    """The smoothed emotion and its confidence when tracking provides them, else the frame's own."""
    if face.smoothed_emotion is None:
        return face.emotion, face.confidence
    score = face.smoothed_confidence
    return face.smoothed_emotion, face.confidence if score is None else score


@dataclass
class TrackState:
    camera: str
    track_id: Any
    start_time: float  # capture time (Unix seconds) of the first frame showing the face
    face: Face
    frame_time: float
    seen_at: float  # monotonic time of the last result showing the face
    top_score: float = 0.0
    published: dict[str, Any] | None = None
    published_at: float = 0.0

    def see(self, face: Face, frame_time: float, now: float) -> None:
        self.face, self.frame_time, self.seen_at = face, frame_time, now
        self.top_score = max(self.top_score, face_emotion(face)[1])

    @property
    def emotion(self) -> str:
        return face_emotion(self.face)[0]

    def side(self, end_time: float | None = None) -> dict[str, Any]:
        """One side (``before`` or ``after``) of an event."""
        emotion, score = face_emotion(self.face)
        return {"id": f"{self.camera}-{self.track_id}", "camera": self.camera, "track_id": self.track_id,
                "emotion": emotion, "score": round(score, 4), "top_score": round(self.top_score, 4),
                "scores": {k: round(float(v), 4) for k, v in self.face.scores.items()},
                "box": list(self.face.box), "frame_time": self.frame_time, "start_time": self.start_time,
                "end_time": end_time}


@dataclass
class TrackEvents:
    update_interval: float
    tracks: dict[tuple[str, Any], TrackState] = field(default_factory=dict)
    detector: ChangeDetector = field(default_factory=ChangeDetector)

    def feed(self, result: Result, now: float) -> Iterator[dict[str, Any]]:
        """The events one result causes, in order."""
        faces = {face.track_id: face for face in result.faces if face.track_id is not None}
        touched: set[Any] = set()
        for change in self.detector.feed(result):
            track, key = change["track_id"], (result.camera, change["track_id"])
            touched.add(track)
            if change["event"] == "disappeared":
                state = self.tracks.pop(key, None)
                if state is not None:
                    yield self._event("end", state, now, end_time=result.captured_at)
                continue
            face = faces.get(track)
            if face is None:
                continue
            state = self.tracks.get(key)
            if change["event"] == "appeared" or state is None:
                if self._camera_full(result.camera):
                    continue
                state = self.tracks[key] = TrackState(result.camera, track, result.captured_at, face,
                                                      result.captured_at, now)
                state.see(face, result.captured_at, now)
                yield self._event("new", state, now)
            else:
                state.see(face, result.captured_at, now)
                yield self._event("update", state, now)
        for track, face in faces.items():
            state = self.tracks.get((result.camera, track))
            if track in touched or state is None:
                continue
            state.see(face, result.captured_at, now)
            if now - state.published_at >= self.update_interval:
                yield self._event("update", state, now)

    def expire(self, now: float) -> Iterator[dict[str, Any]]:
        """End tracks not seen for STALE_SECONDS (their end was lost with a restarted worker)."""
        stale: dict[str, list[Any]] = {}
        for (camera, track), state in self.tracks.items():
            if now - state.seen_at > STALE_SECONDS:
                stale.setdefault(camera, []).append(track)
        for camera, ended in stale.items():
            log.info("camera %s: tracks %s unseen for %.0f s; ending them", camera, ended, STALE_SECONDS)
            last = max(self.tracks[(camera, t)].frame_time for t in ended)
            yield from self._close(camera, ended, last, now)

    def end(self, message: TracksEnded, now: float) -> Iterator[dict[str, Any]]:
        """``end`` for every track of a camera that stopped producing frames."""
        yield from self._close(message.camera, list(message.ended_tracks), message.at, now)

    def _close(self, camera: str, ended: list[Any], end_time: float, now: float) -> Iterator[dict[str, Any]]:
        closing = Result(camera, -1, end_time, end_time, (0, 0), (), {}, "", "", extra={"ended_tracks": ended})
        yield from self.feed(closing, now)
        for track in ended:  # a track the detector had not heard of: nothing to announce, just forget it
            self.tracks.pop((camera, track), None)

    def live(self, camera: str) -> list[TrackState]:
        return [state for (cam, _), state in self.tracks.items() if cam == camera]

    def _camera_full(self, camera: str) -> bool:
        if sum(1 for cam, _ in self.tracks if cam == camera) < MAX_TRACKS_PER_CAMERA:
            return False
        log.warning("camera %s: %d live tracks; ignoring new ones", camera, MAX_TRACKS_PER_CAMERA)
        return True

    @staticmethod
    def _event(kind: str, state: TrackState, now: float, end_time: float | None = None) -> dict[str, Any]:
        after = state.side(end_time)
        before = state.published if state.published is not None else after
        state.published, state.published_at = after, now
        return {"type": kind, "before": before, "after": after}
