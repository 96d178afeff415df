"""``emotiond log summary DIR``: faces per emotion per camera, and a PNG timeline of emotion shares.

Reads the JSONL and CSV files ``emotiond log`` writes (both may sit in one folder). Lines that do not
parse are counted and skipped, so a log that is being written to, or was cut short, can be summarised.
"""

from __future__ import annotations

import csv
import json
import logging
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from emotiond.clients.overlay import EMOTION_COLORS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FaceRow:
    camera: str
    at: float  # captured_at, seconds since the epoch
    emotion: str


@dataclass
class LogContents:
    faces: list[FaceRow] = field(default_factory=list)
    results: Counter = field(default_factory=Counter)  # per camera
    missed: Counter = field(default_factory=Counter)  # per camera
    bad_lines: int = 0
    files: int = 0


def _jsonl(path: Path, into: LogContents) -> None:
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                into.bad_lines += 1
                continue
            kind = data.get("kind") if isinstance(data, dict) else None
            if kind == "gap":
                into.missed[data["camera"]] += int(data.get("missed", 0))
            elif kind is None and isinstance(data, dict) and "faces" in data:
                into.results[data["camera"]] += 1
                into.faces += [FaceRow(data["camera"], float(data["captured_at"]), f["emotion"])
                               for f in data["faces"]]


def _csv(path: Path, into: LogContents) -> None:
    with path.open(encoding="utf-8", errors="replace", newline="") as fh:
        seen: set[tuple[str, str]] = set()
        for row in csv.DictReader(fh):
            try:
                record, camera = row["record"], row["camera"]
                if record == "gap":
                    into.missed[camera] += int(row["missed"])
                elif record in ("face", "frame"):
                    if (camera, row["seq"]) not in seen:
                        seen.add((camera, row["seq"]))
                        into.results[camera] += 1
                    if record == "face":
                        into.faces.append(FaceRow(camera, float(row["captured_at"]), row["emotion"]))
            except (KeyError, TypeError, ValueError):
                into.bad_lines += 1


def log_files(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix in (".jsonl", ".csv"):
            yield path


def read_log(folder: Path) -> LogContents:
    contents = LogContents()
    for path in log_files(folder):
        contents.files += 1
        (_jsonl if path.suffix == ".jsonl" else _csv)(path, contents)
    return contents


def count_table(contents: LogContents) -> str:
    """Plain-text table: one line per (camera, emotion) with the share of that camera's faces."""
    per_camera: dict[str, Counter] = defaultdict(Counter)
    for face in contents.faces:
        per_camera[face.camera][face.emotion] += 1
    lines = [f"{'camera':<16} {'emotion':<10} {'faces':>8} {'share':>7}"]
    for camera in sorted(set(per_camera) | set(contents.results)):
        counts = per_camera[camera]
        total = sum(counts.values())
        for emotion, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"{camera:<16} {emotion:<10} {count:>8} {count / total:>7.1%}")
        lines.append(f"{camera:<16} {'(total)':<10} {total:>8}   results {contents.results[camera]}, "
                     f"missed {contents.missed[camera]}")
    return "\n".join(lines) + "\n"


def timeline_png(contents: LogContents, out: Path, bin_seconds: float | None = None) -> Path:
    """Stacked shares of each emotion per time bin, one panel per camera."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cameras = sorted({f.camera for f in contents.faces})
    figure, axes = plt.subplots(max(1, len(cameras)), 1, figsize=(10, 2.6 * max(1, len(cameras))),
                                squeeze=False, sharex=True)
    if not cameras:
        axes[0][0].text(0.5, 0.5, "no faces in the log", ha="center", va="center")
    start = min((f.at for f in contents.faces), default=0.0)
    span = max((f.at for f in contents.faces), default=0.0) - start
    step = bin_seconds or max(1.0, span / 60)
    labels = [e for e in EMOTION_COLORS if any(f.emotion == e for f in contents.faces)]
    labels += sorted({f.emotion for f in contents.faces} - set(labels))
    for axis, camera in zip((a[0] for a in axes), cameras, strict=False):
        rows = [f for f in contents.faces if f.camera == camera]
        bins = int(span // step) + 1
        counts = np.zeros((len(labels), bins))
        for face in rows:
            counts[labels.index(face.emotion), int((face.at - start) // step)] += 1
        totals = counts.sum(axis=0)
        shares = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
        x = np.arange(bins + 1) * step  # one more edge so the last bin is drawn to its end
        shares = np.concatenate([shares, shares[:, -1:]], axis=1)
        colors = [tuple(c / 255 for c in reversed(EMOTION_COLORS.get(e, (128, 128, 128)))) for e in labels]
        axis.stackplot(x, shares, labels=labels, colors=colors, step="post")
        axis.set_ylim(0, 1)
        axis.set_ylabel(f"{camera}\nshare")
        axis.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    began = datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if contents.faces else "-"
    axes[-1][0].set_xlabel(f"seconds since {began} (bins of {step:g} s)")
    figure.suptitle("Emotion shares over time")
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return out
