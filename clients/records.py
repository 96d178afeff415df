"""How results and log events become JSON lines or CSV rows (shared by ``log`` and ``analyze``).

JSON lines hold results exactly in the event schema (``Result.to_dict()``, as ``emotiond events`` prints
them); other records carry a ``kind`` key (``gap``, ``restart``, ``status``, ``tracks`` for the tracks a
camera ended when it stopped) so readers can tell them apart. CSV has one row per face, because that is what
spreadsheets and pandas want; the ``record`` column says what a row is (``face``, ``frame`` for a result without
faces, ``gap``, ``restart``, ``status``, ``tracks``).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any

from emotiond.clients.gaps import Event, Gap, Restart
from emotiond.core.bundle import FER_PLUS_LABELS
from emotiond.core.protocol import Aggregate, Result, Status, TracksEnded

SCORE_COLUMNS = [f"score_{label}" for label in FER_PLUS_LABELS]
CSV_COLUMNS = ["record", "camera", "seq", "captured_at", "published_at", "frame_width", "frame_height",
               "worker", "model", "latency_total_ms", "face", "x", "y", "w", "h", "emotion", "confidence",
               *SCORE_COLUMNS, "other_scores", "missed", "detail", "extra"]


Record = Result | Status | TracksEnded | Aggregate | Event


def json_line(record: Record) -> str:
    if isinstance(record, Result):
        data: dict[str, Any] = record.to_dict()
    elif isinstance(record, Status):
        data = {"kind": "status", **record.to_dict()}
    elif isinstance(record, TracksEnded):
        data = {"kind": "tracks", **record.to_dict()}
    elif isinstance(record, Aggregate):
        data = {"kind": "aggregate", **record.to_dict()}
    else:
        data = record.to_dict()
    return json.dumps(data, separators=(",", ":")) + "\n"


def _result_rows(result: Result, faces_only: bool) -> Iterator[dict[str, Any]]:
    common = {"camera": result.camera, "seq": result.seq, "captured_at": result.captured_at,
              "published_at": result.published_at, "frame_width": result.frame_size[0],
              "frame_height": result.frame_size[1], "worker": result.worker, "model": result.model,
              "latency_total_ms": result.latency_ms.get("total", ""),
              "extra": json.dumps(result.extra, separators=(",", ":")) if result.extra else ""}
    if not result.faces and not faces_only:
        yield {"record": "frame", **common}
    for index, face in enumerate(result.faces):
        row = {"record": "face", **common, "face": index, "x": face.box[0], "y": face.box[1], "w": face.box[2],
               "h": face.box[3], "emotion": face.emotion, "confidence": face.confidence}
        others = {}
        for label, score in face.scores.items():
            if label in FER_PLUS_LABELS:
                row[f"score_{label}"] = score
            else:
                others[label] = score
        if others:
            row["other_scores"] = json.dumps(others, separators=(",", ":"))
        yield row


def csv_rows(record: Record, faces_only: bool = False) -> Iterator[dict[str, Any]]:
    if isinstance(record, Result):
        yield from _result_rows(record, faces_only)
    elif isinstance(record, Status):
        yield {"record": "status", "camera": record.camera, "captured_at": record.at, "detail": record.state,
               "extra": json.dumps({"message": record.message, "frames": record.frames})}
    elif isinstance(record, TracksEnded):
        yield {"record": "tracks", "camera": record.camera, "seq": record.seq, "captured_at": record.at,
               "worker": record.worker, "detail": record.reason,
               "extra": json.dumps({"ended_tracks": list(record.ended_tracks)})}
    elif isinstance(record, Aggregate):
        yield {"record": "aggregate", "camera": record.camera, "captured_at": record.start, "worker": record.worker,
               "detail": "suppressed" if record.suppressed else "", "extra": json.dumps(record.to_dict())}
    elif isinstance(record, Gap):
        yield {"record": "gap", "camera": record.camera, "seq": record.first_seq, "captured_at": record.at,
               "missed": record.missed}
    elif isinstance(record, Restart):
        yield {"record": "restart", "camera": record.camera, "seq": record.to_seq, "captured_at": record.at,
               "detail": f"seq {record.from_seq} -> {record.to_seq}"}


def csv_text(rows: Iterable[dict[str, Any]], header: bool = False) -> str:
    """Complete CSV lines (with the header first if asked), ready for one write."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_COLUMNS, lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def csv_header() -> str:
    return csv_text([], header=True)
