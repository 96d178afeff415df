"""The history's questions, one implementation for the CLI, the web API and the console page.

Every function takes a ``HistoryReader`` (store.py), builds SQLAlchemy Core statements that run the same on
SQLite and PostgreSQL, and returns JSON-ready dicts. Lists page by ``before`` (rows strictly older than it, newest
first), never by offset, so a page stays right while the writer adds rows. Summaries are built from the per-minute
aggregates only, which retention never removes: a bucket of minutes with no frames analysed has ``coverage`` None,
so a gap reads as a gap and never as "neutral".
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from emotiond.clients.history import schema
from emotiond.clients.history.times import TimeError
from emotiond.clients.history.valence import VALENCE_FORMULA

MINUTE = 60.0
DEFAULT_SPAN = 86400.0  # since defaults to a day before until
DEFAULT_BUCKET = 300
MAX_BUCKETS = 20_000  # per camera: a week at 1 minute is 10,080
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100


class QueryError(TimeError):
    """A query parameter out of range: one line (CLI exit 2, API 400)."""


# ---------------------------------------------------------------- parameters

def window(since: float | None, until: float | None, now: float | None = None) -> tuple[float, float]:
    """``[since, until)`` with defaults (until: now; since: a day before until), checked."""
    until = (time.time() if now is None else now) if until is None else float(until)
    since = until - DEFAULT_SPAN if since is None else float(since)
    if not (math.isfinite(since) and math.isfinite(until)):
        raise QueryError("since and until must be finite times")
    if since >= until:
        raise QueryError(f"since ({since:.3f}) must be before until ({until:.3f})")
    return since, until


def check_bucket(bucket_seconds: float, since: float, until: float) -> int:
    """Whole minutes (buckets are built from minute aggregates), and at most MAX_BUCKETS over the window."""
    if not math.isfinite(bucket_seconds) or bucket_seconds < MINUTE or bucket_seconds % MINUTE:
        raise QueryError(f"bucket must be a whole number of minutes, not {bucket_seconds:g} s")
    bucket = int(bucket_seconds)
    count = math.ceil(until / bucket) - math.floor(since / bucket)
    if count > MAX_BUCKETS:
        raise QueryError(f"{count} buckets of {bucket} s is more than {MAX_BUCKETS}: give a larger bucket or a "
                         "shorter time range")
    return bucket


def check_limit(limit: int) -> int:
    if not 1 <= int(limit) <= MAX_LIMIT:
        raise QueryError(f"limit must be between 1 and {MAX_LIMIT}, not {limit}")
    return int(limit)


def _rows(source: Any, statement: sa.Executable) -> list[sa.Row]:
    """The rows of ``statement``, on ``source``: a reader (a connection of its own) or an open connection."""
    if isinstance(source, sa.Connection):
        return list(source.execute(statement))
    with source.connect() as connection:
        return list(connection.execute(statement))


def _json(text: str | None) -> dict[str, float]:
    if not text:
        return {}
    value = json.loads(text)
    return value if isinstance(value, dict) else {}


def _camera_filter(column: sa.ColumnElement, camera: str | None, everywhere: bool = False) -> list:
    """``column = camera``; with ``everywhere``, rows for all cameras (NULL) match any camera too."""
    if camera is None:
        return []
    if everywhere:
        return [sa.or_(column == camera, column.is_(None))]
    return [column == camera]


# ---------------------------------------------------------------- summary

MINUTE_COLUMNS = ("camera", "start", "faces", "face_seconds", "valence_seconds", "frames_analysed", "frames_missed")


class _Sums:
    """One camera's running sums, a slot per bucket (lists, not a dict per bucket: a day at 1-minute buckets is
    1,440 of them, and building each only once keeps the summary quick)."""

    def __init__(self, count: int):
        self.faces = [0] * count
        self.analysed = [0] * count
        self.missed = [0] * count
        self.valence = [0.0] * count
        self.seconds: list[dict[str, float] | None] = [None] * count
        self.seen = [False] * count

    def bucket(self, index: int, start: float) -> dict[str, Any]:
        if not self.seen[index]:
            return {"start": start, "faces": 0, "face_seconds": {}, "shares": {}, "valence": None, "coverage": None,
                    "frames_analysed": 0, "frames_missed": 0}
        seconds = self.seconds[index] or {}
        total = sum(seconds.values())
        analysed, missed = self.analysed[index], self.missed[index]
        frames = analysed + missed
        return {"start": start, "faces": self.faces[index],
                "face_seconds": {label: round(value, 3) for label, value in sorted(seconds.items())},
                "shares": {label: round(value / total, 4) for label, value in sorted(seconds.items())}
                if total else {},
                "valence": round(self.valence[index] / total, 4) if total > 0 else None,
                "coverage": round(analysed / frames, 4) if frames else None,
                "frames_analysed": analysed, "frames_missed": missed}


def fold_minutes(rows: Iterable[Sequence[Any]], since: float, until: float, bucket: int,
                 cameras: Sequence[str] = ()) -> dict[str, list[dict[str, Any]]]:
    """Per camera, every bucket of the window in time order, the minutes of ``rows`` (tuples of MINUTE_COLUMNS)
    added into theirs.

    ``faces`` is the most distinct faces seen in one minute of the bucket (a face seen over several minutes is
    one face, not several); face-seconds, frames and valence-seconds add up. A bucket without a single minute
    recorded has ``coverage`` None.
    """
    first = int(math.floor(since / bucket) * bucket)
    count = int(math.ceil(until / bucket) * bucket - first) // bucket
    by_camera: dict[str, _Sums] = {camera: _Sums(count) for camera in cameras}
    loads = json.loads
    for camera, start, faces, face_seconds, valence_seconds, analysed, missed in rows:
        sums = by_camera.get(camera)
        if sums is None:
            sums = by_camera[camera] = _Sums(count)
        index = int((start - first) // bucket)
        if not 0 <= index < count:
            continue
        sums.seen[index] = True
        if faces and faces > sums.faces[index]:
            sums.faces[index] = int(faces)
        if face_seconds and face_seconds != "{}":
            seconds = sums.seconds[index]
            if seconds is None:
                seconds = sums.seconds[index] = {}
            for label, value in loads(face_seconds).items():
                seconds[label] = seconds.get(label, 0.0) + value
        sums.valence[index] += valence_seconds or 0.0
        sums.analysed[index] += analysed or 0
        sums.missed[index] += missed or 0
    return {camera: [sums.bucket(index, float(first + index * bucket)) for index in range(count)]
            for camera, sums in sorted(by_camera.items())}


def summary(reader: Any, camera: str | None = None, since: float | None = None, until: float | None = None,
            bucket_seconds: float = DEFAULT_BUCKET, zone: str = "") -> dict[str, Any]:
    """Emotion shares, valence and coverage per bucket per camera, with the markers of the window."""
    since, until = window(since, until)
    bucket = check_bucket(bucket_seconds, since, until)
    minutes = schema.minutes
    first = math.floor(since / bucket) * bucket  # whole buckets: the first one starts at or before since
    statement = (sa.select(*(minutes.c[name] for name in MINUTE_COLUMNS))
                 .where(minutes.c.zone == zone, minutes.c.start >= first, minutes.c.start < until,
                        *_camera_filter(minutes.c.camera, camera))
                 .order_by(minutes.c.camera, minutes.c.start))
    with reader.connect() as connection:  # one connection (and one pool check-out) for both statements
        rows = _rows(connection, statement)
        marked = markers(connection, camera, since, until)["markers"]
    cameras = fold_minutes(rows, since, until, bucket, (camera,) if camera is not None else ())
    return {"since": since, "until": until, "bucket_seconds": bucket, "zone": zone,
            "valence_formula": VALENCE_FORMULA, "cameras": cameras, "markers": marked}


# ---------------------------------------------------------------- tracks and events

def _page(rows: list[dict[str, Any]], limit: int, key: str) -> tuple[list[dict[str, Any]], float | None]:
    """``limit`` rows of ``rows`` (fetched with one more) and the ``before`` of the next page, or None at the end.

    Rows with the same time as the page's last one all go to the next page (when the page has older ones), since
    ``before`` keeps only rows strictly older: none is skipped or shown twice.
    """
    if len(rows) <= limit:
        return rows, None
    page = rows[:limit]
    boundary = page[-1][key]
    if rows[limit][key] == boundary:
        kept = [row for row in page if row[key] != boundary]
        if kept:
            page = kept
    return page, page[-1][key]


def track_row(row: Mapping[str, Any]) -> dict[str, Any]:
    first, last = row["first_seen"], row["last_seen"]
    return {"id": row["id"], "camera": row["camera"], "track_id": row["track_id"], "worker": row["worker"],
            "first_seen": first, "last_seen": last,
            "duration": round(last - first, 3) if first is not None and last is not None else None,
            "end_reason": row["end_reason"], "dominant": row["dominant"],
            "mean_scores": _json(row["mean_scores"]), "mean_valence": row["mean_valence"],
            "samples": row["samples"], "coverage": row["coverage"], "model": row["model"]}


def event_row(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "track": row["track"], "camera": row["camera"], "t": row["t"], "kind": row["kind"],
            "emotion": row["emotion"], "previous": row["previous"], "reason": row["reason"],
            "confidence": row["confidence"]}


def _newest_first(reader: Any, table: sa.Table, columns: tuple[str, ...], time_column: str,
                  row: Callable[[Mapping[str, Any]], dict[str, Any]], camera: str | None, since: float | None,
                  until: float | None, before: float | None, limit: int) -> tuple[list[dict[str, Any]], float | None]:
    """One page of a table's rows in ``[since, until)`` and before ``before``, newest first, and the next
    page's ``before``: what tracks and events share."""
    since, until = window(since, until)
    limit = check_limit(limit)
    stamp = table.c[time_column]
    upper = until if before is None else min(until, float(before))
    statement = (sa.select(*(table.c[name] for name in columns))
                 .where(stamp >= since, stamp < upper, *_camera_filter(table.c.camera, camera))
                 .order_by(stamp.desc(), table.c.id.desc()).limit(limit + 1))
    return _page([row(found._mapping) for found in _rows(reader, statement)], limit, time_column)


def tracks(reader: Any, camera: str | None = None, since: float | None = None, until: float | None = None,
           before: float | None = None, limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
    """Tracks that started in ``[since, until)`` and before ``before``, newest first."""
    page, next_before = _newest_first(reader, schema.tracks, _TRACK_COLUMNS, "first_seen", track_row, camera,
                                      since, until, before, limit)
    return {"tracks": page, "next_before": next_before}


_TRACK_COLUMNS = ("id", "camera", "track_id", "worker", "first_seen", "last_seen", "end_reason", "dominant",
                  "mean_scores", "mean_valence", "samples", "coverage", "model")
_EVENT_COLUMNS = ("id", "track", "camera", "t", "kind", "emotion", "previous", "reason", "confidence")


def events(reader: Any, camera: str | None = None, since: float | None = None, until: float | None = None,
           before: float | None = None, limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
    """Track events (appeared, changed, disappeared) in ``[since, until)`` and before ``before``, newest first."""
    page, next_before = _newest_first(reader, schema.track_events, _EVENT_COLUMNS, "t", event_row, camera,
                                      since, until, before, limit)
    return {"events": page, "next_before": next_before}


def track(reader: Any, track_id: int) -> dict[str, Any] | None:
    """One track with its samples and events in time order (None when there is no such track, or it was
    forgotten). A track whose samples retention already removed keeps its events and summary."""
    table = schema.tracks
    found = _rows(reader, sa.select(*(table.c[name] for name in _TRACK_COLUMNS)).where(table.c.id == int(track_id)))
    if not found:
        return None
    samples = schema.samples
    sample_rows = _rows(reader, sa.select(samples.c.t, samples.c.emotion, samples.c.confidence, samples.c.valence,
                                          samples.c.scores)
                        .where(samples.c.track == int(track_id)).order_by(samples.c.t, samples.c.id))
    event_table = schema.track_events
    event_rows = _rows(reader, sa.select(*(event_table.c[name] for name in _EVENT_COLUMNS))
                       .where(event_table.c.track == int(track_id)).order_by(event_table.c.t, event_table.c.id))
    return {"track": track_row(found[0]._mapping),
            "samples": [{"t": row["t"], "emotion": row["emotion"], "confidence": row["confidence"],
                         "valence": row["valence"], "scores": _json(row["scores"])}
                        for row in (found_row._mapping for found_row in sample_rows)],
            "events": [event_row(row._mapping) for row in event_rows]}


# ---------------------------------------------------------------- markers and gaps

def marker_row(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "t": row["t"], "camera": row["camera"], "label": row["label"], "source": row["source"]}


def markers(reader: Any, camera: str | None = None, since: float | None = None,
            until: float | None = None) -> dict[str, Any]:
    """Markers in ``[since, until)`` in time order; for one camera, its own and those set for all cameras."""
    since, until = window(since, until)
    table = schema.markers
    statement = (sa.select(table.c.id, table.c.t, table.c.camera, table.c.label, table.c.source)
                 .where(table.c.t >= since, table.c.t < until,
                        *_camera_filter(table.c.camera, camera, everywhere=True))
                 .order_by(table.c.t, table.c.id))
    return {"markers": [marker_row(row._mapping) for row in _rows(reader, statement)]}


def gaps(reader: Any, camera: str | None = None, since: float | None = None,
         until: float | None = None) -> dict[str, Any]:
    """Recorded losses (a killed writer's open batch, a full disk, rows dropped while PostgreSQL was away) that
    overlap ``[since, until)``."""
    since, until = window(since, until)
    table = schema.gaps
    statement = (sa.select(table.c.id, table.c.camera, table.c.start, table.c.end, table.c.reason)
                 .where(table.c.end >= since, table.c.start < until,
                        *_camera_filter(table.c.camera, camera, everywhere=True))
                 .order_by(table.c.start, table.c.id))
    return {"gaps": [dict(row._mapping) for row in _rows(reader, statement)]}


def cameras(reader: Any) -> list[str]:
    """Every camera with minute aggregates (kept for ever), in name order."""
    minutes = schema.minutes
    return [row.camera for row in _rows(reader, sa.select(minutes.c.camera).distinct().order_by(minutes.c.camera))]
