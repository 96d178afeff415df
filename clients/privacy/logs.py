"""Erasure in the logger's files: a camera's results in a time range, or one track, removed from JSONL and CSV.

As in the history (clients/history/forget.py), a range takes whole tracks: every track seen on the camera in the
range goes, with its faces before and after it. Results of the range go whole; a track's faces elsewhere are cut
out of their results (the frame's other faces stay), and its id out of ``ended_tracks``. Status lines, gaps and
aggregates name no one and stay. CSV files hold no track ids, so only a range finds rows there.

Files are rewritten in place, reading again whatever a running logger appended meanwhile, so its lines are kept.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emotiond.clients.privacy.retention import LOG_FILE_RE


@dataclass
class LogErasure:
    """What to remove: ``camera`` (None: every camera) and ``between`` (a range), or ``track`` (one id)."""

    camera: str | None
    between: tuple[float, float] | None
    track: int | None
    tracks: set[int] = field(default_factory=set)  # the ids that go: the one named and those seen in the range

    def camera_matches(self, camera: Any) -> bool:
        return self.camera is None or camera == self.camera

    def in_range(self, camera: Any, at: Any) -> bool:
        if self.between is None or not self.camera_matches(camera) or not isinstance(at, int | float):
            return False
        return self.between[0] <= at <= self.between[1]


def log_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if LOG_FILE_RE.match(path.name) and path.is_file())


def _records(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                yield record


def collect_tracks(erasure: LogErasure, folders: list[Path]) -> None:
    """Add to ``erasure.tracks`` the named track and every track seen on the camera in the range."""
    if erasure.track is not None:
        erasure.tracks.add(erasure.track)
    if erasure.between is None:
        return
    for folder in folders:
        for path in log_files(folder):
            if not path.name.endswith(".jsonl"):
                continue
            for record in _records(path):
                if "kind" not in record and erasure.in_range(record.get("camera"), record.get("captured_at")):
                    erasure.tracks.update(face["track_id"] for face in record.get("faces") or ()
                                          if isinstance(face, dict) and isinstance(face.get("track_id"), int))


def _filter_jsonl(text: str, erasure: LogErasure, counts: dict[str, int]) -> str:
    kept = []
    for line in text.splitlines(keepends=True):
        try:
            record = json.loads(line)
        except ValueError:
            kept.append(line)
            continue
        if not isinstance(record, dict) or not erasure.camera_matches(record.get("camera")):
            kept.append(line)
            continue
        kind = record.get("kind")
        if kind is None and "faces" in record:  # a result
            if erasure.in_range(record.get("camera"), record.get("captured_at")):
                counts["results"] += 1
                counts["faces"] += len(record.get("faces") or ())
                continue
            faces = [face for face in record["faces"] if not (isinstance(face, dict)
                                                                 and face.get("track_id") in erasure.tracks)]
            ended = [i for i in record.get("ended_tracks", []) if i not in erasure.tracks]
            if len(faces) == len(record["faces"]) and len(ended) == len(record.get("ended_tracks", [])):
                kept.append(line)
                continue
            counts["faces"] += len(record["faces"]) - len(faces)
            record["faces"] = faces
            if "ended_tracks" in record:
                record["ended_tracks"] = ended
            kept.append(json.dumps(record, separators=(",", ":")) + "\n")
        elif kind == "tracks":
            ended = [i for i in record.get("ended_tracks", []) if i not in erasure.tracks]
            if len(ended) == len(record.get("ended_tracks", [])):
                kept.append(line)
            elif ended:
                record["ended_tracks"] = ended
                kept.append(json.dumps(record, separators=(",", ":")) + "\n")
                counts["track_ends"] += 1
            else:
                counts["track_ends"] += 1
        else:
            kept.append(line)
    return "".join(kept)


def _filter_csv(text: str, erasure: LogErasure, counts: dict[str, int]) -> str:
    lines = text.splitlines(keepends=True)
    if not lines:
        return text
    header = next(csv.reader([lines[0]]))
    kept = [lines[0]]
    for line in lines[1:]:
        row = dict(zip(header, next(csv.reader([line]), []), strict=False))
        try:
            at = float(row.get("captured_at", ""))
        except ValueError:
            at = None
        if row.get("record") in ("face", "frame") and erasure.in_range(row.get("camera"), at):
            counts["faces" if row["record"] == "face" else "results"] += 1
            continue
        kept.append(line)
    return "".join(kept)


def _rewrite(path: Path, erasure: LogErasure, counts: dict[str, int]) -> bool:
    """Filter one file in place; True if anything went. A tail appended while filtering is filtered and kept."""
    rewrite = _filter_csv if path.name.endswith(".csv") else _filter_jsonl
    with path.open("r+", encoding="utf-8", newline="") as fh:
        text = fh.read()
        kept = rewrite(text, erasure, counts)
        if kept == text:
            return False
        tail = fh.read()  # lines a running logger appended meanwhile
        if tail:
            kept += _filter_jsonl(tail, erasure, counts) if rewrite is _filter_jsonl else tail
        fh.seek(0)
        fh.write(kept)
        fh.truncate()
        fh.flush()
        os.fsync(fh.fileno())
    return True


def forget_in_logs(folders: list[Path], camera: str | None, between: tuple[float, float] | None,
                   track: int | None) -> dict[str, int]:
    """Remove the range's results and the tracks' faces from every log file of ``folders``; what went."""
    erasure = LogErasure(camera, between, track)
    collect_tracks(erasure, folders)
    counts = {"files_rewritten": 0, "results": 0, "faces": 0, "track_ends": 0}
    for folder in folders:
        for path in log_files(folder):
            if _rewrite(path, erasure, counts):
                counts["files_rewritten"] += 1
    return counts

