"""Per-camera states for MQTT's retained topics: how many faces are in view, the dominant emotion, and how many
faces show each emotion.

With tracking, a face counts from its track's ``new`` event to its ``end``, so a face missed for a frame or two
does not make the states flicker; without tracking, the faces of the latest result count.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

NO_EMOTION = "none"


@dataclass(frozen=True)
class CameraState:
    faces: int
    dominant: str
    counts: dict[str, int]  # every known label, 0 included


def camera_state(emotions: Iterable[tuple[str, float]], labels: Iterable[str]) -> CameraState:
    """From (emotion, confidence) per face in view: the most common emotion wins, ties go to the larger summed
    confidence, then to the name (so the answer never depends on order)."""
    emotions = list(emotions)
    counts = Counter(emotion for emotion, _ in emotions)
    confidence: Counter[str] = Counter()
    for emotion, score in emotions:
        confidence[emotion] += score
    dominant = max(counts, key=lambda e: (counts[e], confidence[e], e)) if counts else NO_EMOTION
    return CameraState(len(emotions), dominant, {label: counts.get(label, 0) for label in labels})
