"""Track change events from the result stream: a track appears, disappears, or its smoothed emotion changes.

Results carry ``track_id`` and ``smoothed_emotion`` per face and ``ended_tracks`` per frame (set by the
workers' trackers, which already apply hysteresis), so this is exact bookkeeping, not guesswork. When a camera
stops producing frames (end of stream, down past the grace period, daemon stopping, worker lost) its open
tracks end in a ``TracksEnded`` message; their ``disappeared`` events carry its ``reason``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from emotiond.core.protocol import Result, TracksEnded


class ChangeDetector:
    def __init__(self) -> None:
        self._emotions: dict[tuple[str, Any], str] = {}

    def feed(self, message: Result | TracksEnded) -> Iterator[dict[str, Any]]:
        if isinstance(message, TracksEnded):
            base = {"v": 1, "camera": message.camera, "seq": message.seq, "at": message.at}
            yield from self._ended(base, message.camera, message.ended_tracks, message.reason)
            return
        result = message
        base = {"v": 1, "camera": result.camera, "seq": result.seq, "at": result.published_at}
        for face in result.faces:
            track = face.track_id
            if track is None:
                continue
            emotion = face.smoothed_emotion or face.emotion
            key = (result.camera, track)
            previous = self._emotions.get(key)
            self._emotions[key] = emotion
            if previous is None:
                yield {**base, "event": "appeared", "track_id": track, "emotion": emotion, "box": list(face.box)}
            elif previous != emotion:
                yield {**base, "event": "changed", "track_id": track, "emotion": emotion, "previous": previous,
                       "box": list(face.box)}
        yield from self._ended(base, result.camera, result.extra.get("ended_tracks", ()), None)

    def _ended(self, base: dict[str, Any], camera: str, tracks: Any, reason: str | None) -> Iterator[dict[str, Any]]:
        for track in tracks:
            emotion = self._emotions.pop((camera, track), None)
            if emotion is not None:
                event = {**base, "event": "disappeared", "track_id": track, "emotion": emotion}
                yield event if reason is None else {**event, "reason": reason}

    def open_tracks(self, camera: str) -> list[Any]:
        """Tracks of a camera that appeared and have not disappeared."""
        return [track for cam, track in self._emotions if cam == camera]
