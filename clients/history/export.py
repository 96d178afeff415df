"""``emotiond history export``: samples or minute aggregates to CSV or Parquet, for a spreadsheet or pandas.

A CSV opens with ``#`` comment lines naming the model(s), the time zone (UTC) and the valence formula, the way
FaceReader's and iMotions' exports state their settings above the data; Parquet keeps the same facts in the file's
key-value metadata. Rows are streamed from the database in time order, never held all at once. Parquet needs
pyarrow (the ``parquet`` extra).
"""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from emotiond.clients.history import schema
from emotiond.clients.history.queries import window
from emotiond.clients.history.times import iso
from emotiond.clients.history.valence import VALENCE_FORMULA
from emotiond.core.errors import UsageError

TABLES = ("samples", "minutes")
FORMATS = ("csv", "parquet")
PEEK_ROWS = 2000  # rows read before the header is written, to learn score labels no track summary names yet
BATCH_ROWS = 5000


class ExportError(UsageError):
    """An export that cannot be written (no pyarrow for parquet, an unwritable file): one line, exit 2."""


def _labels_from(texts: Iterator[str | None]) -> set[str]:
    labels: set[str] = set()
    for text in texts:
        if text:
            labels.update(json.loads(text))
    return labels


# ---------------------------------------------------------------- what each table exports

def _sample_statement(camera: str | None, since: float, until: float) -> sa.Select:
    samples, tracks = schema.samples, schema.tracks
    conditions = [samples.c.t >= since, samples.c.t < until]
    if camera is not None:
        conditions.append(samples.c.camera == camera)
    return (sa.select(samples.c.t, samples.c.camera, samples.c.track, tracks.c.track_id, tracks.c.model,
                      samples.c.emotion, samples.c.confidence, samples.c.valence, samples.c.scores)
            .join(tracks, tracks.c.id == samples.c.track).where(*conditions)
            .order_by(samples.c.t, samples.c.id))


def _minute_conditions(camera: str | None, since: float, until: float, zone: str) -> list:
    minutes = schema.minutes
    conditions = [minutes.c.start >= since, minutes.c.start < until, minutes.c.zone == zone]
    if camera is not None:
        conditions.append(minutes.c.camera == camera)
    return conditions


def _minute_statement(camera: str | None, since: float, until: float, zone: str) -> sa.Select:
    minutes = schema.minutes
    conditions = _minute_conditions(camera, since, until, zone)
    return (sa.select(minutes.c.start, minutes.c.camera, minutes.c.zone, minutes.c.faces, minutes.c.face_seconds,
                      minutes.c.valence_seconds, minutes.c.frames_analysed, minutes.c.frames_missed,
                      minutes.c.model)
            .where(*conditions).order_by(minutes.c.start, minutes.c.camera))


SAMPLE_COLUMNS = ("time", "t", "camera", "track", "track_id", "model", "emotion", "confidence", "valence")
MINUTE_COLUMNS = ("time", "start", "camera", "zone", "model", "faces", "face_seconds", "valence", "frames_analysed",
                  "frames_missed", "coverage")


def _sample_record(row: sa.Row, labels: list[str]) -> dict[str, Any]:
    values = row._mapping  # by name: Row.t is SQLAlchemy's tuple view, not the column t
    scores = json.loads(values["scores"]) if values["scores"] else {}
    record = {"time": iso(values["t"]), "t": values["t"], "camera": values["camera"], "track": values["track"],
              "track_id": values["track_id"], "model": values["model"], "emotion": values["emotion"],
              "confidence": values["confidence"], "valence": values["valence"]}
    record.update({label: scores.get(label) for label in labels})
    return record


def _minute_record(row: sa.Row, labels: list[str]) -> dict[str, Any]:
    seconds = json.loads(row.face_seconds) if row.face_seconds else {}
    total = sum(seconds.values())
    frames = (row.frames_analysed or 0) + (row.frames_missed or 0)
    record = {"time": iso(row.start), "start": row.start, "camera": row.camera, "zone": row.zone,
              "model": row.model, "faces": row.faces, "face_seconds": round(total, 3),
              "valence": round(row.valence_seconds / total, 4) if total else None,
              "frames_analysed": row.frames_analysed, "frames_missed": row.frames_missed,
              "coverage": round((row.frames_analysed or 0) / frames, 4) if frames else None}
    record.update({f"seconds_{label}": round(seconds.get(label, 0.0), 3) for label in labels})
    return record


class Export:
    """One export: its rows (streamed), their column names, and the facts for the header."""

    def __init__(self, reader: Any, table: str, camera: str | None, since: float | None, until: float | None,
                 zone: str = ""):
        if table not in TABLES:
            raise ExportError(f"table must be one of {', '.join(TABLES)}")
        self.reader, self.table, self.camera, self.zone = reader, table, camera, zone
        self.since, self.until = window(since, until)

    def _models_and_labels(self, connection: sa.Connection) -> tuple[list[str], set[str]]:
        if self.table == "samples":
            tracks = schema.tracks
            conditions = [tracks.c.first_seen < self.until,
                          sa.func.coalesce(tracks.c.last_seen, tracks.c.first_seen) >= self.since]
            if self.camera is not None:
                conditions.append(tracks.c.camera == self.camera)
            rows = connection.execute(sa.select(tracks.c.model, tracks.c.mean_scores).where(*conditions)).all()
            return sorted({row.model for row in rows if row.model}), _labels_from(row.mean_scores for row in rows)
        minutes = schema.minutes
        rows = connection.execute(sa.select(minutes.c.model, minutes.c.face_seconds).where(
            *_minute_conditions(self.camera, self.since, self.until, self.zone)))
        models: set[str] = set()
        labels: set[str] = set()
        for row in rows:
            if row.model:
                models.add(row.model)
            if row.face_seconds:
                labels.update(json.loads(row.face_seconds))
        return sorted(models), labels

    def header(self, models: list[str]) -> dict[str, str]:
        return {"emotiond history export": self.table,
                "model": ", ".join(models) or "none in this range",
                "time zone": "UTC (time: ISO 8601 UTC; t and start: Unix seconds)",
                "valence": VALENCE_FORMULA,
                "camera": self.camera or "all",
                "since": iso(self.since) or "", "until": iso(self.until) or ""}

    def run(self, sink: Any) -> int:
        """Stream every row into ``sink`` (``begin(header, columns)``, ``write(records)``, ``end()``); rows
        written."""
        written = 0
        with self.reader.connect() as connection:
            models, labels = self._models_and_labels(connection)
            if self.table == "samples":
                statement, record = _sample_statement(self.camera, self.since, self.until), _sample_record
            else:
                statement, record = _minute_statement(self.camera, self.since, self.until, self.zone), _minute_record
            rows = iter(connection.execution_options(stream_results=True, yield_per=BATCH_ROWS).execute(statement))
            peeked = list(itertools.islice(rows, PEEK_ROWS))
            if self.table == "samples":
                labels |= _labels_from(row.scores for row in peeked)
                models = sorted(set(models) | {row.model for row in peeked if row.model})
            ordered = sorted(labels)
            columns = [*SAMPLE_COLUMNS, *ordered] if self.table == "samples" else [
                *MINUTE_COLUMNS, *(f"seconds_{label}" for label in ordered)]
            sink.begin(self.header(models), columns)
            for batch in _batches(itertools.chain(peeked, rows)):
                records = [record(row, ordered) for row in batch]
                sink.write(records)
                written += len(records)
        sink.end()
        return written


def _batches(rows: Iterator[sa.Row]) -> Iterator[list[sa.Row]]:
    while batch := list(itertools.islice(rows, BATCH_ROWS)):
        yield batch


# ---------------------------------------------------------------- file formats

class CsvSink:
    def __init__(self, path: Path):
        self.path = path

    def begin(self, header: dict[str, str], columns: list[str]) -> None:
        self.file = self.path.open("w", newline="", encoding="utf-8")
        for key, value in header.items():
            self.file.write(f"# {key}: {value}\n")
        self.writer = csv.DictWriter(self.file, columns, lineterminator="\n")
        self.writer.writeheader()

    def write(self, records: list[dict[str, Any]]) -> None:
        self.writer.writerows(records)

    def end(self) -> None:
        self.file.close()


class ParquetSink:
    def __init__(self, path: Path):
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ExportError("parquet needs pyarrow: pip install 'emotiond[parquet]' (or use --format csv)") from None
        self.path = path
        self.writer: Any = None

    def begin(self, header: dict[str, str], columns: list[str]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        fields = [pa.field(name, _arrow_type(name)) for name in columns]
        self.schema = pa.schema(fields, metadata={key.encode(): value.encode() for key, value in header.items()})
        self.writer = pq.ParquetWriter(str(self.path), self.schema)

    def write(self, records: list[dict[str, Any]]) -> None:
        import pyarrow as pa

        self.writer.write_table(pa.Table.from_pylist(records, schema=self.schema))

    def end(self) -> None:
        if self.writer is not None:
            self.writer.close()


_TEXT = {"time", "camera", "model", "emotion", "zone"}
_INTEGER = {"track", "track_id", "faces", "frames_analysed", "frames_missed"}


def _arrow_type(name: str) -> Any:
    import pyarrow as pa

    if name in _TEXT:
        return pa.string()
    if name in _INTEGER:
        return pa.int64()
    return pa.float64()


def export(reader: Any, out: Path, fmt: str = "csv", table: str = "samples", camera: str | None = None,
           since: float | None = None, until: float | None = None, zone: str = "") -> int:
    """Write ``table`` rows of ``[since, until)`` to ``out`` as ``fmt``; rows written. A failed export leaves no
    half-written file behind."""
    if fmt not in FORMATS:
        raise ExportError(f"format must be one of {', '.join(FORMATS)}")
    job = Export(reader, table, camera, since, until, zone)
    if not out.parent.is_dir():
        raise ExportError(f"{out.parent} is not a folder")
    partial = out.with_name(f".{out.name}.partial")
    sink = CsvSink(partial) if fmt == "csv" else ParquetSink(partial)
    try:
        written = job.run(sink)
        partial.replace(out)
    except OSError as exc:
        raise ExportError(f"cannot write {out}: {exc.strerror or exc}") from None
    finally:
        partial.unlink(missing_ok=True)
    return written
