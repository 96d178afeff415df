"""One valence score in [-1, 1] from a face's class scores, kept on samples, tracks and minute aggregates.

FaceReader's definition: the intensity of ``happy`` minus that of the strongest negative emotion. It says how
positive or negative the expression looks, not how the person feels; ``surprise`` and ``neutral`` count for neither
side. Labels a model lacks count 0; ``contempt`` (8-class models) counts as negative.
"""

from __future__ import annotations

from collections.abc import Mapping

POSITIVE = "happy"
NEGATIVE = ("sad", "angry", "fear", "disgust", "contempt")
VALENCE_FORMULA = "valence = P(happy) - max(P(sad), P(angry), P(fear), P(disgust), P(contempt)), clipped to [-1, 1]"


def valence(scores: Mapping[str, float]) -> float:
    """Happy minus the strongest negative emotion, clipped to [-1, 1]."""
    negative = max((float(scores.get(label, 0.0)) for label in NEGATIVE), default=0.0)
    value = float(scores.get(POSITIVE, 0.0)) - negative
    return min(1.0, max(-1.0, value))
