"""The benchmark's figures, computed from what a subscriber received and from the true face boxes.

Each function names the one thing it measures, so the report and the checks read the same numbers.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from emotiond.core import protocol
from emotiond.workers.tracking import iou

MATCH_IOU = 0.4  # a detection counts when it overlaps the true (or fer's) box this much
Box = tuple[int, int, int, int]


def steady_fps(results: Sequence[protocol.Result]) -> float:
    """Results per second from the first publish to the last: start-up excluded."""
    stamps = sorted(r.published_at for r in results)
    return (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 and stamps[-1] > stamps[0] else 0.0


def wall_fps(frames: int, seconds: float) -> float:
    """Frames per second of a whole run, start-up included (process start to last event)."""
    return frames / seconds if seconds > 0 else 0.0


def lost_frames(results: Sequence[protocol.Result], frames: int) -> int:
    """Frames of a file-mode camera that never reached the subscriber."""
    return frames - len({r.seq for r in results if 0 <= r.seq < frames})


def recall(results: Sequence[protocol.Result], truth: Sequence[Sequence[Box]]) -> float:
    """Share of true faces, over every frame received, that some reported box overlaps."""
    found = total = 0
    for result in results:
        for true_box in truth[result.seq]:
            total += 1
            found += any(iou(true_box, face.box) >= MATCH_IOU for face in result.faces)
    return found / total if total else 0.0


def fer_recall(fer_faces: Sequence[Sequence[dict]], truth: Sequence[Sequence[Box]]) -> float:
    found = total = 0
    for boxes, faces in zip(truth, fer_faces, strict=True):
        for true_box in boxes:
            total += 1
            found += any(iou(true_box, tuple(f["box"])) >= MATCH_IOU for f in faces)
    return found / total if total else 0.0


def agreement(results: Sequence[protocol.Result], fer_faces: Sequence[Sequence[dict]]) -> float:
    """Share of the faces both found (boxes overlapping) that got the same top emotion; 0 when none matched.

    Faces only one side found are left to the recall figures.
    """
    same = compared = 0
    for result in results:
        for theirs in fer_faces[result.seq]:
            ours = max(result.faces, key=lambda f: iou(f.box, tuple(theirs["box"])), default=None)
            if ours is not None and iou(ours.box, tuple(theirs["box"])) >= MATCH_IOU:
                compared += 1
                same += ours.emotion == theirs["emotion"]
    return same / compared if compared else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] if ordered else 0.0


def worker_latency_ms(results: Sequence[protocol.Result]) -> list[float]:
    """The worker's own figure: published_at - captured_at (``latency_ms.total``)."""
    return [r.latency_ms["total"] for r in results]


def subscriber_latency_ms(results: Sequence[protocol.Result], received_at: Sequence[float]) -> list[float]:
    """Capture to event where the user sees it: the subscriber's receive time - captured_at."""
    return [(received - r.captured_at) * 1000 for r, received in zip(results, received_at, strict=True)]


def live_drop_rate(results: Sequence[protocol.Result]) -> dict[str, float]:
    """Frames missing between each camera's first and last result (start-up excluded)."""
    rates = {}
    for camera in sorted({r.camera for r in results}):
        seqs = [r.seq for r in results if r.camera == camera]
        span = max(seqs) - min(seqs) + 1
        rates[camera] = 1 - len(set(seqs)) / span
    return rates


def stage_means(results: Sequence[protocol.Result]) -> dict[str, float]:
    stages = ("decode", "detect", "crop", "classify", "publish")
    return {s: statistics.fmean(r.latency_ms.get(s, 0.0) for r in results) if results else 0.0 for s in stages}
