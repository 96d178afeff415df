"""The history writer's metrics.

Under ``emotiond run`` the writer is a child of the supervisor and its series join the daemon's /metrics
(multiprocess mode); a writer run on its own keeps them in the registry it is given.
"""

from __future__ import annotations

from typing import Any

TABLES = ("tracks", "track_events", "samples", "minutes", "gaps")
# Why rows were dropped: the database stayed unwritable past [history] buffer_rows, or refused a batch outright.
DROP_REASONS = ("buffer_full", "rejected")
# Why a write failed: a full disk, an unreachable server, a locked SQLite file, I/O, a batch the database refused.
ERROR_REASONS = ("disk_full", "unreachable", "locked", "io_error", "rejected")


class HistoryMetrics:
    def __init__(self, registry: Any = None):
        """``registry`` None: the default one (the daemon's multiprocess files when run by the supervisor)."""
        from prometheus_client import REGISTRY, Counter, Gauge, Histogram

        self.registry = registry if registry is not None else REGISTRY
        self.rows = Counter("emotiond_history_rows_written_total", "Rows committed to the history database, by "
                            "table.", ["table"], registry=self.registry)
        self.batches = Counter("emotiond_history_batches_total", "Transactions committed by the history writer.",
                               registry=self.registry)
        self.dropped = Counter("emotiond_history_dropped_rows_total", "Rows the history writer gave up on (each "
                               "run is also recorded as a gap), by reason.", ["reason"], registry=self.registry)
        self.errors = Counter("emotiond_history_errors_total", "Failed history writes, by reason.", ["reason"],
                              registry=self.registry)
        self.purged = Counter("emotiond_history_purged_rows_total", "Rows removed by retention, by table.",
                              ["table"], registry=self.registry)
        self.buffered = Gauge("emotiond_history_buffered_rows", "Rows waiting to be written.",
                              registry=self.registry, multiprocess_mode="livemax")
        self.commit_seconds = Histogram("emotiond_history_commit_seconds", "Time to write one batch.",
                                        buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
                                        registry=self.registry)
        for table in TABLES:
            self.rows.labels(table)
        for table in ("samples", "track_events", "tracks"):
            self.purged.labels(table)
        for reason in DROP_REASONS:
            self.dropped.labels(reason)
        for reason in ERROR_REASONS:
            self.errors.labels(reason)
        self.buffered.set(0)
