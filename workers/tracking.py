"""Per-camera face tracks: stable ids across frames and smoothed emotions.

Detections are matched to tracks by overlap; a track unseen for more than ``max_missed`` frames ends. Where to
look for faces in the next frame is workers.finder's job. Each track keeps an exponential moving average of its
class scores; the smoothed emotion changes only when another label leads the current one by ``hysteresis``, so
labels do not flicker.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from emotiond.core.settings import TrackingSettings

Box = tuple[int, int, int, int]


def iou(a: np.ndarray | Box, b: np.ndarray | Box) -> float:
    ax, ay, aw, ah = (float(v) for v in a)
    bx, by, bw, bh = (float(v) for v in b)
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def new_track_id(seq: int, index: int) -> int:
    """Unique per camera whichever worker makes it: derived from the frame where the track began."""
    return seq * 100 + index % 100


@dataclass
class Track:
    track_id: int
    box: Box
    missed: int = 0
    smoothed: np.ndarray | None = None
    emotion: str = ""

    def region(self, margin: float, width: int, height: int) -> Box:
        """Where to look for this face in the next frame, clipped to the frame."""
        x, y, w, h = self.box
        mx, my = round(w * margin), round(h * margin)
        x0, y0 = max(0, x - mx), max(0, y - my)
        x1, y1 = min(width, x + w + mx), min(height, y + h + my)
        return x0, y0, max(0, x1 - x0), max(0, y1 - y0)


@dataclass
class CameraTracker:
    settings: TrackingSettings
    labels: tuple[str, ...]
    tracks: list[Track] = field(default_factory=list)
    last_seq: int = -1

    def associate(self, seq: int, boxes: np.ndarray) -> tuple[list[int], list[int]]:
        """Match detections to tracks. Returns (track id per detection, ids of tracks that ended)."""
        self.last_seq = seq
        pairs = sorted(((iou(box, t.box), i, j) for i, box in enumerate(boxes) for j, t in enumerate(self.tracks)),
                       reverse=True)
        assigned: dict[int, int] = {}
        used_tracks: set[int] = set()
        for overlap, i, j in pairs:
            if overlap < self.settings.iou_threshold:
                break
            if i in assigned or j in used_tracks:
                continue
            assigned[i] = j
            used_tracks.add(j)
        ids: list[int] = []
        for i, box in enumerate(boxes):
            as_box: Box = (int(box[0]), int(box[1]), int(box[2]), int(box[3]))
            if i in assigned:
                track = self.tracks[assigned[i]]
                track.box, track.missed = as_box, 0
            else:
                track = Track(new_track_id(seq, i), as_box)
                self.tracks.append(track)
                used_tracks.add(len(self.tracks) - 1)
            ids.append(track.track_id)
        ended: list[int] = []
        survivors: list[Track] = []
        for j, track in enumerate(self.tracks):
            if j not in used_tracks:
                track.missed += 1
            if track.missed > self.settings.max_missed:
                ended.append(track.track_id)
            else:
                survivors.append(track)
        self.tracks = survivors
        return ids, ended

    def smooth(self, track_id: int, probabilities: np.ndarray) -> tuple[str, np.ndarray]:
        """EMA of the track's scores and its hysteresis-filtered label."""
        track = next((t for t in self.tracks if t.track_id == track_id), None)
        if track is None:
            return self.labels[int(np.argmax(probabilities))], probabilities
        alpha = self.settings.ema_alpha
        track.smoothed = probabilities.copy() if track.smoothed is None else (
            alpha * probabilities + (1.0 - alpha) * track.smoothed)
        leader = int(np.argmax(track.smoothed))
        if not track.emotion:
            track.emotion = self.labels[leader]
        else:
            current = self.labels.index(track.emotion)
            if track.smoothed[leader] - track.smoothed[current] > self.settings.hysteresis:
                track.emotion = self.labels[leader]
        return track.emotion, track.smoothed

