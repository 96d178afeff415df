"""One valence score in [-1, 1] from a face's class scores, kept on samples, tracks and minute aggregates.

FaceReader's definition: the intensity of ``happy`` minus that of the strongest negative emotion. It says how
positive or negative the expression looks, not how the person feels; ``surprise`` and ``neutral`` count for neither
side. Labels a model lacks count 0; ``contempt`` (8-class models) counts as negative.
"""

from __future__ import annotations

from collections.abc import Mapping

POSITIVE = "happy"
NEGATIVE = ("sad", "angry", "fear", "disgust", "contempt")  # as spelled out in valence()
VALENCE_FORMULA = "valence = P(happy) - max(P(sad), P(angry), P(fear), P(disgust), P(contempt)), clipped to [-1, 1]"


def valence(scores: Mapping[str, float]) -> float:
    """Happy minus the strongest negative emotion, clipped to [-1, 1]."""
    get = scores.get  # spelled out: this runs for every face the writer sees
    value = float(get(POSITIVE, 0.0)) - float(max(get("sad", 0.0), get("angry", 0.0), get("fear", 0.0),
                                                  get("disgust", 0.0), get("contempt", 0.0)))
    return min(1.0, max(-1.0, value))
