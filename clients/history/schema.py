"""The history tables, one SQLAlchemy Core definition for SQLite and PostgreSQL, and the schema version.

Times are Unix seconds (UTC) as floats. Columns whose content may grow (scores per label) are JSON text, so a model
with other labels needs no migration. A file or database is ours when it says so: SQLite files carry
``PRAGMA application_id`` = "EMOD" and ``PRAGMA user_version``; both engines keep the ``meta`` table.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Connection

from emotiond.core.errors import UsageError

APPLICATION = "emotiond-history"
APPLICATION_ID = 0x454D4F44  # "EMOD", SQLite's PRAGMA application_id
SCHEMA_VERSION = 1
SQLITE_MAGIC = b"SQLite format 3\x00"

# Track end reasons: the tracks.<camera> reasons (docs/protocol.md), "left" for a face that left the view, and
# "writer_lost" for a track left open by a history writer that was killed (the next writer starts it afresh).
END_REASONS = ("left", "eos", "down", "stop", "worker_lost", "moved", "writer_lost")
EVENT_KINDS = ("appeared", "changed", "disappeared")
MARKER_SOURCES = ("cli", "api", "mqtt")

# Row ids: 64-bit on PostgreSQL; on SQLite "INTEGER PRIMARY KEY" (the rowid, already 64-bit) keeps inserts fast.
RowId = BigInteger().with_variant(Integer, "sqlite")

metadata = MetaData()

meta = Table(
    "meta", metadata,
    Column("key", Text, primary_key=True),
    Column("value", Text, nullable=False),
)

tracks = Table(
    "tracks", metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("camera", Text, nullable=False),
    Column("track_key", Text, nullable=False, unique=True),  # "<camera>/<worker>/<track_id>/<first_seen ms>"
    Column("track_id", BigInteger, nullable=False),  # the tracker's id: any non-negative 64-bit integer
    Column("worker", Text, nullable=False),
    Column("first_seen", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("end_reason", Text),  # END_REASONS, NULL while open
    Column("dominant", Text),
    Column("mean_scores", Text, nullable=False, default="{}"),  # JSON {label: mean score}
    Column("mean_valence", Float),
    Column("samples", Integer, nullable=False, default=0),  # rows of this track in samples (thinned)
    Column("coverage", Float),  # share of the track's span with a detection
    Column("model", Text, nullable=False, default=""),
    Index("ix_tracks_camera_first_seen", "camera", "first_seen"),
    Index("ix_tracks_first_seen", "first_seen"),
    sqlite_autoincrement=True,
)

track_events = Table(
    "track_events", metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("track", RowId, ForeignKey("tracks.id"), nullable=False),
    Column("camera", Text, nullable=False),
    Column("t", Float, nullable=False),
    Column("kind", Text, nullable=False),  # EVENT_KINDS
    Column("emotion", Text),
    Column("previous", Text),
    Column("reason", Text),
    Column("confidence", Float),
    Index("ix_track_events_camera_t", "camera", "t"),
    Index("ix_track_events_t", "t"),
    Index("ix_track_events_track", "track"),
    sqlite_autoincrement=True,
)

samples = Table(
    "samples", metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("track", RowId, ForeignKey("tracks.id"), nullable=False),
    Column("camera", Text, nullable=False),
    Column("t", Float, nullable=False),
    Column("emotion", Text, nullable=False),
    Column("confidence", Float, nullable=False),
    Column("valence", Float, nullable=False),
    Column("scores", Text, nullable=False),  # JSON {label: score}
    Index("ix_samples_camera_t", "camera", "t"),
    Index("ix_samples_track_t", "track", "t"),
    sqlite_autoincrement=True,
)

minutes = Table(
    "minutes", metadata,
    Column("camera", Text, nullable=False),
    Column("zone", Text, nullable=False, default=""),  # "" = the whole frame
    Column("start", Float, nullable=False),  # a multiple of 60
    Column("faces", Integer, nullable=False, default=0),  # distinct tracks seen
    Column("face_seconds", Text, nullable=False, default="{}"),  # JSON {label: seconds}
    Column("valence_seconds", Float, nullable=False, default=0.0),  # sum of valence x seconds
    Column("frames_analysed", Integer, nullable=False, default=0),
    Column("frames_missed", Integer, nullable=False, default=0),
    Column("model", Text, nullable=False, default=""),
    PrimaryKeyConstraint("camera", "zone", "start", name="pk_minutes"),
    Index("ix_minutes_start", "start"),
)

markers = Table(
    "markers", metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("t", Float, nullable=False),
    Column("camera", Text),  # NULL = every camera
    Column("label", Text, nullable=False),
    Column("source", Text, nullable=False),  # MARKER_SOURCES
    Index("ix_markers_t", "t"),
    sqlite_autoincrement=True,
)

gaps = Table(
    "gaps", metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("camera", Text),  # NULL = every camera
    Column("start", Float, nullable=False),
    Column("end", Float, nullable=False),
    Column("reason", Text, nullable=False),
    Index("ix_gaps_start", "start"),
    sqlite_autoincrement=True,
)

TABLE_NAMES = tuple(metadata.tables)  # meta, tracks, track_events, samples, minutes, markers, gaps


class HistoryError(UsageError):
    """A history database that cannot be used as it is (foreign, newer, unreachable): one line, never a traceback."""


def check_sqlite_file(path: Path) -> bool:
    """Whether ``path`` already holds our history (False: no file yet, or an empty one). A file that is not
    SQLite, belongs to another application or was written by a newer emotiond raises ``HistoryError``; it is only
    read (through a read-only connection), never written."""
    try:
        if not path.exists() or path.stat().st_size == 0:
            return False
        with path.open("rb") as file:
            magic = file.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise HistoryError(f"history database {path}: cannot read: {exc.strerror}") from None
    if magic != SQLITE_MAGIC:
        raise HistoryError(f"{path} is not an SQLite database; refusing to use it as the emotiond history "
                           "(move it away or set [history] url)")
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            application_id = connection.execute("PRAGMA application_id").fetchone()[0]
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            names = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        finally:
            connection.close()
    except sqlite3.DatabaseError as exc:
        raise HistoryError(f"{path}: cannot read it as SQLite ({exc}); refusing to use it as the emotiond "
                           "history") from None
    if application_id == 0 and not names:
        return False  # an empty database: ours to set up
    if application_id != APPLICATION_ID:
        raise HistoryError(f"{path} belongs to another application (application_id {application_id:#x}, "
                           f"tables: {', '.join(sorted(names)) or 'none'}); refusing to use it as the emotiond "
                           "history")
    if version > SCHEMA_VERSION:
        raise HistoryError(f"{path} was written by a newer emotiond (history schema {version}, this one reads "
                           f"up to {SCHEMA_VERSION}); refusing to use it")
    return True


def check_database(connection: Connection, where: str) -> bool:
    """Whether the database behind ``connection`` holds our schema (False: none of our tables yet). Tables of
    our names without our ``meta`` rows, or a newer schema, raise ``HistoryError``."""
    names = set(inspect(connection).get_table_names())
    ours = names & set(TABLE_NAMES)
    if not ours:
        return False
    if "meta" not in names:
        raise HistoryError(f"{where} holds tables named {', '.join(sorted(ours))} that emotiond did not make; "
                           "refusing to use it as the emotiond history")
    rows = dict(connection.execute(select(meta.c.key, meta.c.value)).tuples().all())
    if rows.get("application") != APPLICATION:
        raise HistoryError(f"{where}: its meta table belongs to another application "
                           f"({rows.get('application')!r}); refusing to use it as the emotiond history")
    try:
        version = int(rows.get("schema_version", "0"))
    except ValueError:
        raise HistoryError(f"{where}: unreadable schema_version {rows.get('schema_version')!r}") from None
    if version > SCHEMA_VERSION:
        raise HistoryError(f"{where} was written by a newer emotiond (history schema {version}, this one reads up "
                           f"to {SCHEMA_VERSION}); refusing to use it")
    return True


def create_schema(connection: Connection) -> None:
    """Create every table and index that is missing and stamp the version, inside the caller's transaction."""
    if connection.dialect.name == "sqlite":
        connection.execute(text(f"PRAGMA application_id = {APPLICATION_ID}"))
        connection.execute(text(f"PRAGMA user_version = {SCHEMA_VERSION}"))
    metadata.create_all(connection, checkfirst=True)
    present = set(connection.execute(select(meta.c.key)).scalars().all())
    rows = [{"key": key, "value": value} for key, value in
            (("application", APPLICATION), ("schema_version", str(SCHEMA_VERSION))) if key not in present]
    if rows:
        connection.execute(meta.insert(), rows)
