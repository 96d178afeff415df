"""Retention tiers: samples after ``samples_days``, tracks and their events after ``events_days`` (each per camera
overridable), minute aggregates never; past ``max_bytes`` the oldest samples go first.

Purging runs in the writer's loop in chunks, each its own short transaction, sized so one holds the write lock for
well under 100 ms (a chunk that took longer halves the next, a quick one doubles it). A pass does at most
``budget_seconds`` of work per call and continues at the next, so batches keep being committed in between.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, delete, func, select, text, true

from emotiond.clients.history import schema
from emotiond.clients.history.store import HistoryStore
from emotiond.core.settings import HistorySettings

log = logging.getLogger(__name__)
DAY = 86_400.0
LOCK_TARGET_SECONDS = 0.03  # aim of one chunk's transaction; the promise is < 0.1 s, on a busy machine too
MIN_CHUNK, MAX_CHUNK = 50, 5000
SIZE_CAP_TARGET = 0.9  # a size cap purge goes down to this share of max_bytes, so it does not run at every pass


@dataclass
class PurgeStats:
    """What retention did, for metrics, logs and tests."""

    deleted: dict[str, int] = field(default_factory=lambda: {"samples": 0, "track_events": 0, "tracks": 0})
    chunks: int = 0
    longest_chunk_seconds: float = 0.0
    chunk_seconds: list[float] = field(default_factory=list)  # each delete chunk's transaction


class Retention:
    def __init__(self, store: HistoryStore, options: HistorySettings, metrics: Any = None, *,
                 clock: Callable[[], float] = time.time, budget_seconds: float = 0.1, chunk_rows: int = 1000):
        self.store = store
        self.options = options
        self.metrics = metrics
        self.clock = clock
        self.budget_seconds = budget_seconds
        self.chunk_rows = chunk_rows
        self.stats = PurgeStats()
        self._next_pass = 0.0  # wall clock (the writer's clock) of the next pass
        self._work: Iterator[None] | None = None
        self._pg_stats: bool | None = None

    # ------------------------------------------------------------ driving
    def step(self, now: float | None = None) -> bool:
        """Work on retention for at most ``budget_seconds``; True while a pass is unfinished."""
        now = self.clock() if now is None else now
        if self._work is None:
            if now < self._next_pass:
                return False
            self._next_pass = now + self.options.purge_interval_seconds
            self._work = self._pass(now)
        deadline = time.monotonic() + self.budget_seconds
        for _ in self._work:
            if time.monotonic() >= deadline:
                return True
        self._work = None
        return False

    def purge(self, now: float | None = None) -> PurgeStats:
        """One whole pass at once (tests, and the CLI's forget); returns the running totals."""
        for _ in self._pass(self.clock() if now is None else now):
            pass
        return self.stats

    # ------------------------------------------------------------ the pass
    def _pass(self, now: float) -> Iterator[None]:
        for camera in self._cameras():
            samples_cut = now - self.options.samples_days_for(camera) * DAY
            events_cut = now - self.options.events_days_for(camera) * DAY
            s, e, tr = schema.samples, schema.track_events, schema.tracks
            yield from self._chunks("samples", and_(s.c.camera == camera, s.c.t < samples_cut), "t")
            yield from self._chunks("track_events", and_(e.c.camera == camera, e.c.t < events_cut), "t")
            yield from self._track_chunks(select(tr.c.id).where(and_(tr.c.camera == camera,
                                                                     tr.c.last_seen < events_cut)))
        if self.options.max_bytes:
            yield from self._size_cap()

    def _cameras(self) -> list[str]:
        with self.store.connect() as connection:
            return list(connection.execute(select(schema.tracks.c.camera).distinct()).scalars().all())

    def _chunks(self, table_name: str, where: Any, order_by: str, limit: int | None = None) -> Iterator[None]:
        """Delete the rows ``where`` selects in ``order_by`` order, a chunk per transaction, until none is left (or
        ``limit``). Each chunk starts where the last one ended (keyset), so no chunk walks over the index entries
        of rows already deleted (PostgreSQL keeps them until vacuum)."""
        table = schema.metadata.tables[table_name]
        order = table.c[order_by]
        left = math.inf if limit is None else limit
        bound: Any = None
        while left > 0:
            size = int(min(self.chunk_rows, left))

            def chunk(connection: Any, size: int = size, bound: Any = bound) -> tuple[int, Any]:
                query = select(table.c.id, order).where(where)
                if bound is not None:
                    query = query.where(order >= bound)
                rows = connection.execute(query.order_by(order).limit(size)).all()
                if rows:
                    connection.execute(delete(table).where(table.c.id.in_([row[0] for row in rows])))
                return len(rows), rows[-1][1] if rows else bound

            deleted, bound = self._timed(chunk)
            self._count(table_name, deleted)
            left -= deleted
            yield
            if deleted < size:
                return

    def _track_chunks(self, ids: Any) -> Iterator[None]:
        """Tracks go with whatever samples and events still point at them, in the same transaction."""
        while True:
            size = self.chunk_rows

            def chunk(connection: Any, size: int = size) -> tuple[int, int, int]:
                found = connection.execute(ids.limit(size)).scalars().all()
                if not found:
                    return 0, 0, 0
                samples = connection.execute(delete(schema.samples).where(schema.samples.c.track.in_(found))).rowcount
                events = connection.execute(
                    delete(schema.track_events).where(schema.track_events.c.track.in_(found))).rowcount
                tracks = connection.execute(delete(schema.tracks).where(schema.tracks.c.id.in_(found))).rowcount
                return tracks, samples, events

            tracks, samples, events = self._timed(chunk)
            self._count("tracks", tracks)
            self._count("samples", samples)
            self._count("track_events", events)
            yield
            if tracks < size:
                return

    def _timed(self, work: Callable[[Any], Any]) -> Any:
        """Run one chunk in its own transaction and size the next one from how long it held the lock."""
        began = time.monotonic()
        with self.store.begin() as connection:
            result = work(connection)
            if self._flush_stats(connection):
                connection.exec_driver_sql("SELECT pg_stat_force_next_flush()")
        took = time.monotonic() - began
        self.stats.chunks += 1
        self.stats.longest_chunk_seconds = max(self.stats.longest_chunk_seconds, took)
        self.stats.chunk_seconds.append(took)
        if took > LOCK_TARGET_SECONDS:
            self.chunk_rows = max(MIN_CHUNK, self.chunk_rows // 2)
        elif took < LOCK_TARGET_SECONDS / 3:
            self.chunk_rows = min(MAX_CHUNK, self.chunk_rows * 2)
        return result

    def _flush_stats(self, connection: Any) -> bool:
        """PostgreSQL 15+: whether to have this connection's row counts published as soon as it goes idle (else up to
        ten seconds later), so the size cap's next measure sees the rows just deleted."""
        if self._pg_stats is None:
            self._pg_stats = self.store.dialect == "postgresql" and connection.dialect.server_version_info >= (15,)
        return self._pg_stats

    def _count(self, table: str, rows: int) -> None:
        if rows > 0:
            self.stats.deleted[table] += rows
            if self.metrics is not None:
                self.metrics.purged.labels(table).inc(rows)

    # ------------------------------------------------------------ the size cap
    def _size_cap(self) -> Iterator[None]:
        used = used_bytes(self.store)
        if used <= self.options.max_bytes:
            return
        with self.store.connect() as connection:
            rows = connection.execute(select(func.count()).select_from(schema.samples)).scalar_one()
            others = connection.execute(select(func.count()).select_from(schema.track_events)).scalar_one()
        if not rows:
            log.warning("history: the database (%d bytes) is over [history] max_bytes (%d) with no samples left to "
                        "purge", used, self.options.max_bytes)
            return
        per_row = used / (rows + others)
        excess = math.ceil((used - self.options.max_bytes * SIZE_CAP_TARGET) / per_row)
        log.info("history: %d bytes is over the %d byte cap: purging the oldest %d sample(s)", used,
                 self.options.max_bytes, min(excess, rows))
        yield from self._chunks("samples", true(), "id", limit=excess)
        if self.store.dialect == "sqlite":
            yield from self._release_pages()

    def _release_pages(self) -> Iterator[None]:
        """Hand SQLite's free pages back to the file system, a bounded number per transaction. (The pragma frees
        one page per step of its statement, so it runs through executescript, which steps it to the end.)"""
        pages = 256
        while True:
            began = time.monotonic()
            raw = self.store.engine.raw_connection()
            try:
                sqlite = raw.driver_connection
                sqlite.executescript(f"PRAGMA incremental_vacuum({pages});")
                free = sqlite.execute("PRAGMA freelist_count").fetchone()[0]
            finally:
                raw.close()
            took = time.monotonic() - began
            self.stats.chunks += 1
            self.stats.longest_chunk_seconds = max(self.stats.longest_chunk_seconds, took)
            pages = max(16, pages // 2) if took > LOCK_TARGET_SECONDS else min(65_536, pages * 2)
            yield
            if not free:
                break
        raw = self.store.engine.raw_connection()
        try:  # the file shrinks when the WAL is copied back; PASSIVE never waits for readers
            raw.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            raw.close()


def used_bytes(store: HistoryStore) -> int:
    """The space the history's rows take: SQLite's pages in use (free pages not counted), PostgreSQL's tables and
    indexes scaled by their share of live rows (deleted rows wait for autovacuum)."""
    with store.connect() as connection:
        if store.dialect == "sqlite":
            pages = connection.exec_driver_sql("PRAGMA page_count").scalar_one()
            free = connection.exec_driver_sql("PRAGMA freelist_count").scalar_one()
            size = connection.exec_driver_sql("PRAGMA page_size").scalar_one()
            return int((pages - free) * size)
        query = text("SELECT coalesce(sum(pg_total_relation_size(s.relid) * s.n_live_tup::float8 / "
                     "greatest(s.n_live_tup + s.n_dead_tup, 1)), 0) FROM pg_stat_user_tables s "
                     "WHERE s.relname = ANY(:names)")
        return int(connection.execute(query, {"names": list(schema.TABLE_NAMES)}).scalar_one())
