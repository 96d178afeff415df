"""Track change events from the result stream: a track appears, disappears, or its smoothed emotion changes.

Results carry ``track_id`` and ``smoothed_emotion`` per face and ``ended_tracks`` per frame (set by the
workers' trackers, which already apply hysteresis), so this is exact bookkeeping, not guesswork.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from emotiond.core.protocol import Result


class ChangeDetector:
    def __init__(self) -> None:
        self._emotions: dict[tuple[str, Any], str] = {}

    def feed(self, result: Result) -> Iterator[dict[str, Any]]:
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
        for track in result.extra.get("ended_tracks", ()):
            emotion = self._emotions.pop((result.camera, track), None)
            if emotion is not None:
                yield {**base, "event": "disappeared", "track_id": track, "emotion": emotion}
