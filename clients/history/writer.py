"""The history writer: one process that subscribes to the results bus and writes tracks, track events, thinned
samples, minute aggregates and gaps in one transaction about every ``[history] commit_seconds``.

What is not yet committed is the open batch. A writer killed mid-batch loses at most that: each commit also
records the writer's state in ``meta``, so the next writer finds the state still open and records the time from
the last commit to its own start as a ``writer_lost`` gap.

A database that cannot be written (disk full, PostgreSQL unreachable or restarting) is reported once, in one
line; rows are held (at most ``[history] buffer_rows``, then the oldest samples go first, counted and recorded as
a gap) and writing is retried with backoff until it works again. The daemon never waits for the history: the
writer is only a subscriber, and the bus drops for a slow one.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, bindparam, exc, select

from emotiond.clients.gaps import Gap, GapTracker
from emotiond.clients.history import aggregates, schema
from emotiond.clients.history.metrics import HistoryMetrics
from emotiond.clients.history.retention import Retention
from emotiond.clients.history.schema import HistoryError
from emotiond.clients.history.store import HistoryStore, HistoryUnavailableError, describe_error
from emotiond.clients.history.tracks import SAMPLE_COLUMNS, SAMPLE_T, OpenTrack, TrackBook, TrackRows
from emotiond.clients.history.valence import valence
from emotiond.clients.privacy.retention import capped_history
from emotiond.core import protocol
from emotiond.core.settings import Settings

log = logging.getLogger(__name__)
DRAIN_BATCH = 1024
RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 5.0
WRITER_LOST = "writer_lost"
_SQLITE_SAMPLE_INSERT = (f"INSERT INTO {schema.samples.name} (track, {', '.join(SAMPLE_COLUMNS)}) "
                         f"VALUES ({', '.join('?' * (len(SAMPLE_COLUMNS) + 1))})")
_TRACK_COLUMNS = ("last_seen", "end_reason", "dominant", "mean_scores", "mean_valence", "samples", "coverage")


def classify(error: BaseException) -> str:
    """The reason of a failed write, for the metric, the gap and the log line."""
    text = describe_error(error).lower()
    if "full" in text or "no space" in text:
        return "disk_full"
    if "locked" in text or "busy" in text:
        return "locked"
    if "disk i/o" in text or "readonly" in text or "read-only" in text or "unable to open" in text:
        return "io_error"
    if isinstance(error, exc.OperationalError | exc.InterfaceError | HistoryUnavailableError | ConnectionError):
        return "unreachable" if "sqlite" not in type(getattr(error, "orig", error)).__module__ else "io_error"
    return "rejected"


def retryable(error: BaseException) -> bool:
    """A failure that may pass (the batch is kept); anything else means the batch itself is refused."""
    return isinstance(error, exc.OperationalError | exc.InterfaceError | HistoryUnavailableError | OSError) or (
        isinstance(error, exc.DBAPIError) and error.connection_invalidated)


@dataclass
class Batch:
    """Rows waiting for the next commit."""

    tracks: TrackRows = field(default_factory=TrackRows)
    minutes: list[dict[str, Any]] = field(default_factory=list)
    gaps: list[dict[str, Any]] = field(default_factory=list)

    def rows(self) -> int:
        return len(self.tracks.events) + len(self.tracks.samples) + len(self.minutes) + len(self.gaps)

    def empty(self) -> bool:
        return not (self.rows() or self.tracks.touched)

    def drop_oldest_samples(self, count: int) -> tuple[int, float, float] | None:
        """Drop up to ``count`` of the oldest samples (then the oldest events); returns (rows, first t, last t)."""
        samples, events = self.tracks.samples, self.tracks.events
        take = min(count, len(samples))
        dropped = [row[SAMPLE_T] for _, row in samples[:take]]  # samples are tuples, events dicts
        del samples[:take]
        take = max(0, min(count - len(dropped), len(events)))
        dropped += [row["t"] for _, row in events[:take]]
        del events[:take]
        return (len(dropped), min(dropped), max(dropped)) if dropped else None


@dataclass
class _Outage:
    """A run of failed writes: reported once, and the rows dropped meanwhile become one gap."""

    reason: str
    since: float  # monotonic
    dropped: int = 0
    first_t: float | None = None
    last_t: float | None = None


class HistoryWriter:
    def __init__(self, store: HistoryStore, settings: Settings, *, metrics: HistoryMetrics | None = None,
                 clock: Callable[[], float] = time.time, writer_id: str | None = None):
        self.store = store
        self.settings = settings
        self.options = capped_history(settings)  # [privacy] retention_days caps every tier
        self.metrics = metrics or HistoryMetrics()
        self.clock = clock
        self.writer_id = writer_id or f"{socket.gethostname()}:{settings.bus.runtime_dir}"
        self.book = TrackBook(self.options.sample_hz)
        self.minutes = aggregates.MinuteAggregator()
        self.bus_gaps = GapTracker()
        self.batch = Batch()
        self.retention = Retention(store, self.options, self.metrics, clock=clock)
        self.outage: _Outage | None = None
        self.started = False
        self.committed_at: float | None = None  # wall clock of the last commit
        self._lost_commit: float | None = None  # the last commit of a writer that was killed, until handled
        self._next_flush = time.monotonic() + self.options.commit_seconds
        self._retry_at = 0.0
        self._retry_delay = RETRY_FIRST_SECONDS
        self.received = 0

    # ------------------------------------------------------------ taking messages
    def handle(self, messages: Iterable[protocol.Message]) -> None:
        now = time.monotonic()
        wall = self.clock()
        for message in messages:
            if isinstance(message, protocol.Result):
                self.received += 1
                self._bus_gaps(self.bus_gaps.see(message.camera, message.seq, now, wall))
                valences = [valence(face.scores) for face in message.faces]  # once, for tracks and minutes
                self.minutes.add_result(message, valences)
                self.book.feed(message, self.batch.tracks, valences)
            elif isinstance(message, protocol.TracksEnded):
                self.book.feed(message, self.batch.tracks)
            elif isinstance(message, protocol.Status) and message.state == "eos":
                self._bus_gaps(self.bus_gaps.finish(message.camera, message.frames, wall))
        self._bus_gaps(self.bus_gaps.expire(now))
        self._limit_buffer()

    def _bus_gaps(self, events: Iterable[Any]) -> None:
        for event in events:
            if isinstance(event, Gap):
                self.minutes.add_missed(event.camera, event.missed, event.at)

    def _limit_buffer(self) -> None:
        excess = self.batch.rows() - self.options.buffer_rows
        if excess <= 0:
            return
        dropped = self.batch.drop_oldest_samples(excess)
        if dropped is None:
            return
        rows, first, last = dropped
        self.metrics.dropped.labels("buffer_full").inc(rows)
        outage = self.outage or _Outage("buffer_full", time.monotonic())
        self.outage = outage
        outage.dropped += rows
        outage.first_t = first if outage.first_t is None else min(outage.first_t, first)
        outage.last_t = last if outage.last_t is None else max(outage.last_t, last)

    # ------------------------------------------------------------ writing
    def start(self) -> None:
        """Prepare the database and record a writer that died before us; raises HistoryError for a database we
        must not use, HistoryUnavailableError (or a database error) when it cannot be reached yet."""
        self.store.prepare()
        key = f"writer:{self.writer_id}"
        with self.store.connect() as connection:
            value = connection.execute(select(schema.meta.c.value).where(schema.meta.c.key == key)).scalar()
        state = json.loads(value) if value else {}
        if state.get("open") and isinstance(state.get("committed"), int | float):
            now = self.clock()
            self.batch.gaps.append({"camera": None, "start": float(state["committed"]), "end": now,
                                    "reason": WRITER_LOST})
            log.warning("history: the previous writer stopped without closing (killed?); the time since its last "
                        "commit (%.1f s) is recorded as a gap", now - float(state["committed"]))
            self._lost_commit = float(state["committed"])
        self.started = True

    def _end_lost_tracks(self, connection: Any) -> None:
        """The tracks a killed writer left open end as ``writer_lost`` (this writer starts them afresh). Only tracks
        it could have written: seen no later than its last commit, and on PostgreSQL, which other daemons may share,
        only this daemon's cameras."""
        if self._lost_commit is None:
            return
        tracks = schema.tracks
        query = tracks.update().where(tracks.c.end_reason.is_(None), tracks.c.last_seen <= self._lost_commit)
        if self.store.dialect != "sqlite":
            cameras = [source.name for source in self.settings.sources]
            if not cameras:
                return
            query = query.where(tracks.c.camera.in_(cameras))
        connection.execute(query.values(end_reason=WRITER_LOST))

    def flush_due(self) -> bool:
        now = time.monotonic()
        if now < self._next_flush or now < self._retry_at:
            return False
        self._next_flush = now + self.options.commit_seconds
        for row in self.minutes.closed(self.clock()):
            self.batch.minutes.append(row)
        return self.flush()

    def flush(self, *, closing: bool = False) -> bool:
        """Write the batch in one transaction; True when it was written (or there was nothing to write)."""
        try:
            if not self.started:
                self.start()
            outage = self.outage
            dropped = [{"camera": None, "start": outage.first_t, "end": outage.last_t, "reason": outage.reason}
                       ] if outage is not None and outage.dropped else []
            began = time.monotonic()
            written = self._write(self.batch, dropped, closing)
        except HistoryError as error:
            if isinstance(error, HistoryUnavailableError):
                return self._failed(error)
            raise
        except (exc.SQLAlchemyError, OSError) as error:
            return self._failed(error)
        self.metrics.commit_seconds.observe(time.monotonic() - began)
        self.metrics.batches.inc()
        for table, count in written.items():
            self.metrics.rows.labels(table).inc(count)
        if self.outage is not None:
            log.info("history: writing again after %.1f s (%s); %d row(s) dropped meanwhile", time.monotonic()
                     - self.outage.since, self.outage.reason, self.outage.dropped)
        self.outage = None
        self._lost_commit = None
        self._retry_delay = RETRY_FIRST_SECONDS
        self.batch = Batch()
        self.metrics.buffered.set(0)
        return True

    def _failed(self, error: BaseException) -> bool:
        """Keep the batch (unless the database refused it outright), report the outage once, retry later."""
        reason = classify(error)
        self.metrics.errors.labels(reason).inc()
        if not retryable(error):
            rows = self.batch.rows()
            self.metrics.dropped.labels("rejected").inc(rows)
            log.error("history: the database refused a batch of %d row(s), dropped: %s", rows, describe_error(error))
            times = [row[SAMPLE_T] for _, row in self.batch.tracks.samples] + [
                row["t"] for _, row in self.batch.tracks.events]
            self._isolate_refused_tracks([track for track in self.batch.tracks.touched.values() if track.id is None])
            self.batch = Batch()  # written tracks are updated at their next detection, with their running totals
            if times:
                self.batch.gaps.append({"camera": None, "start": min(times), "end": max(times), "reason": "rejected"})
            return False
        if self.outage is None or self.outage.reason != reason:
            log.error("history: cannot write to %s (%s): %s; holding up to %d rows and retrying", self.store.where,
                      reason, describe_error(error), self.options.buffer_rows)
            dropped = self.outage.dropped if self.outage else 0
            first, last = (self.outage.first_t, self.outage.last_t) if self.outage else (None, None)
            self.outage = _Outage(reason, time.monotonic(), dropped, first, last)
        self.metrics.buffered.set(self.batch.rows())
        self._retry_at = time.monotonic() + self._retry_delay
        self._retry_delay = min(RETRY_MAX_SECONDS, self._retry_delay * 2)
        return False

    def _isolate_refused_tracks(self, tracks: list[OpenTrack]) -> None:
        """After a refused batch, insert its new tracks one by one: a track whose own row is refused is left out
        until it ends, so it cannot spoil every later batch; the others keep being recorded."""
        for track in tracks:
            try:
                with self.store.begin() as connection:
                    track.id = connection.execute(
                        schema.tracks.insert().values(track.row()).returning(schema.tracks.c.id)).scalar_one()
                self.metrics.rows.labels("tracks").inc()
            except exc.SQLAlchemyError as error:
                track.id = None
                if retryable(error):
                    return
                log.error("history: track %s refused, left out until it ends: %s", track.key, describe_error(error))
                self.book.ignore([track])

    def _write(self, batch: Batch, dropped: list[dict[str, Any]], closing: bool) -> dict[str, int]:
        written: dict[str, int] = {}
        inserted: list[OpenTrack] = []
        try:
            with self.store.begin() as connection:
                updates = []
                for track in batch.tracks.touched.values():
                    if track.id is None:
                        track.id = connection.execute(
                            schema.tracks.insert().values(track.row()).returning(schema.tracks.c.id)).scalar_one()
                        inserted.append(track)
                    else:
                        row = track.row()
                        updates.append({"b_id": track.id, **{f"b_{c}": row[c] for c in _TRACK_COLUMNS}})
                if updates:
                    connection.execute(schema.tracks.update().where(schema.tracks.c.id == bindparam("b_id")).values(
                        {c: bindparam(f"b_{c}") for c in _TRACK_COLUMNS}), updates)
                written["tracks"] = len(inserted)
                if batch.tracks.events:
                    connection.execute(schema.track_events.insert(),
                                       [{"track": track.id, **row} for track, row in batch.tracks.events])
                written["track_events"] = len(batch.tracks.events)
                written["samples"] = self._write_samples(connection, batch.tracks.samples)
                written["minutes"] = self._write_minutes(connection, batch.minutes)
                gaps = batch.gaps + dropped
                if gaps:
                    connection.execute(schema.gaps.insert(), gaps)
                written["gaps"] = len(gaps)
                self._end_lost_tracks(connection)
                self._record_state(connection, open_=not closing)
        except BaseException:
            for track in inserted:  # rolled back: they are inserted again next time
                track.id = None
            raise
        return written

    def _write_samples(self, connection: Any, rows: list[tuple[OpenTrack, tuple[Any, ...]]]) -> int:
        """Insert the samples, the bulk of every batch. On SQLite the rows go to the driver's executemany as plain
        tuples under one prepared INSERT: building a dict and bound parameters per row in SQLAlchemy cost more than
        SQLite's own work. PostgreSQL keeps SQLAlchemy's insert, which sends many rows per statement."""
        if not rows:
            return 0
        if self.store.dialect == "sqlite":
            connection.exec_driver_sql(_SQLITE_SAMPLE_INSERT, [(track.id, *row) for track, row in rows])
        else:
            names = ("track", *SAMPLE_COLUMNS)
            connection.execute(schema.samples.insert(),
                               [dict(zip(names, (track.id, *row), strict=True)) for track, row in rows])
        return len(rows)

    def _write_minutes(self, connection: Any, rows: list[dict[str, Any]]) -> int:
        """Add each closed minute to its row: a minute written before a restart, or partly by a late result, is
        completed rather than replaced."""
        m = schema.minutes
        for row in rows:
            where = and_(m.c.camera == row["camera"], m.c.zone == row["zone"], m.c.start == row["start"])
            found = connection.execute(select(m).where(where)).mappings().first()
            merged = aggregates.merge(dict(found) if found else None, row)
            values = {**merged, "face_seconds": json.dumps(merged["face_seconds"])}
            if found is None:
                connection.execute(m.insert().values(values))
            else:
                connection.execute(m.update().where(where).values(values))
        return len(rows)

    def _record_state(self, connection: Any, *, open_: bool) -> None:
        now = self.clock()
        key = f"writer:{self.writer_id}"
        value = json.dumps({"open": open_, "committed": now, "pid": os.getpid()})
        done = connection.execute(schema.meta.update().where(schema.meta.c.key == key).values(value=value))
        if done.rowcount == 0:
            connection.execute(schema.meta.insert().values(key=key, value=value))
        self.committed_at = now

    # ------------------------------------------------------------ the loop
    def run(self, subscription: Any, should_stop: Callable[[], bool], tick: Callable[[], None] = lambda: None) -> int:
        """Receive, batch, commit and purge until ``should_stop``; then drain the socket, end the open tracks and
        minutes, and commit once more."""
        log.info("history: writing %s into %s", subscription.endpoint, self.store.where)
        while not should_stop():
            tick()
            self.handle(subscription.receive(100, DRAIN_BATCH))
            self.flush_due()
            if self.outage is None and self.started:
                self.retention.step(self.clock())
        while messages := subscription.receive(0, DRAIN_BATCH):
            self.handle(messages)
        self.close()
        return 0

    def close(self) -> None:
        """The last commit: open tracks end ("stop"), open minutes as they stand, the writer's state closed."""
        self.book.end_all("stop", self.batch.tracks)
        self.batch.minutes += self.minutes.flush()
        if not self.flush(closing=True):
            log.error("history: %d row(s) could not be written before stopping", self.batch.rows())
        log.info("history: closed after %d result(s)", self.received)

