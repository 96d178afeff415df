"""Helpers of the history tests: tracked results made to measure, a writer driven in the test's own process with a
fake clock, the writer as its own process, and reading a history database's tables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from sqlalchemy import select

from emotiond.clients.history import schema
from emotiond.clients.history.metrics import HistoryMetrics
from emotiond.clients.history.store import HistoryReader, HistoryStore
from emotiond.clients.history.writer import HistoryWriter
from emotiond.core import protocol
from emotiond.core.settings import Settings

from support.daemon import REPO

LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
T0 = 1_800_000_000.0  # a multiple of 60: minute boundaries fall on round offsets


def scores_for(emotion: str, confidence: float = 0.94) -> dict[str, float]:
    rest = (1.0 - confidence) / (len(LABELS) - 1)
    return {label: confidence if label == emotion else rest for label in LABELS}


def tracked_result(seq: int, t: float, faces: Iterable[tuple[int | None, str]], *, camera: str = "cam0",
                   ended: Iterable[int] = (), worker: str = "w1", model: str = "fer-test") -> protocol.Result:
    """A result whose faces are (track id, emotion) pairs; the smoothed emotion is the emotion."""
    built = tuple(protocol.Face(box=(10 + 40 * i, 20, 30, 30), emotion=emotion, confidence=0.94,
                                scores=scores_for(emotion), track_id=track, smoothed_emotion=emotion if track
                                is not None else None, smoothed_confidence=0.9 if track is not None else None)
                  for i, (track, emotion) in enumerate(faces))
    extra = {"ended_tracks": list(ended)} if ended else {}
    return protocol.Result(camera=camera, seq=seq, captured_at=t, published_at=t + 0.01, frame_size=(640, 480),
                           faces=built, latency_ms={"total": 10.0}, worker=worker, model=model, extra=extra)


class FakeClock:
    def __init__(self, now: float = T0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def history_settings(url: str, **history: Any) -> Settings:
    return Settings.model_validate({"history": {"url": url, **history}})


def make_writer(url: str, clock: FakeClock | None = None, **history: Any) -> HistoryWriter:
    """A writer in this process on a fresh store, committing whenever told (``flush``)."""
    settings = history_settings(url, **history)
    store = HistoryStore(url, prepare=False)
    return HistoryWriter(store, settings, metrics=HistoryMetrics(CollectorRegistry()), clock=clock or FakeClock(),
                         writer_id="test")


def table_rows(url: str, table: str, order_by: str = "") -> list[dict[str, Any]]:
    """Every row of a table, as dicts (JSON columns decoded)."""
    target = schema.metadata.tables[table]
    query = select(target)
    if order_by:
        query = query.order_by(*(target.c[name] for name in order_by.split(",")))
    with HistoryReader(url) as reader, reader.connect() as connection:
        rows = [dict(row) for row in connection.execute(query).mappings()]
    for row in rows:
        for key in ("mean_scores", "scores", "face_seconds"):
            if isinstance(row.get(key), str):
                row[key] = json.loads(row[key])
    return rows


def writer_process(url: str, endpoint: str, log_path: Path, commit_seconds: float = 0.2,
                   **env: str) -> subprocess.Popen:
    """The writer alone as a process (``role.standalone``), subscribed to ``endpoint``."""
    environment = {**os.environ, "EMOTIOND_HISTORY__URL": url, "EMOTIOND_BUS__RESULTS_ENDPOINT": endpoint,
                   "EMOTIOND_HISTORY__COMMIT_SECONDS": str(commit_seconds), "PYTHONUNBUFFERED": "1", **env}
    with log_path.open("a") as log_file:
        return subprocess.Popen([sys.executable, "-c", "import sys; from emotiond.clients.history.role import "
                                 "standalone; sys.exit(standalone())"], cwd=REPO, env=environment, stdout=log_file,
                                stderr=subprocess.STDOUT)


_ZYGOTE = """
import os, signal, sys
import emotiond.clients.history.role as role
import emotiond.clients.history.writer, emotiond.clients.subscribe, emotiond.core.lifecycle  # noqa: F401
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
for line in sys.stdin:
    pid = os.fork()
    if pid == 0:
        os._exit(role.standalone())
    print(pid, flush=True)
"""


class WriterZygote:
    """A process that has imported the writer once and forks a fresh writer on demand: a writer then starts in
    milliseconds instead of paying Python's and SQLAlchemy's imports again, so twenty kills fit in seconds. Each
    child runs exactly what ``writer_process`` runs."""

    def __init__(self, url: str, endpoint: str, log_path: Path, commit_seconds: float = 0.2, **env: str):
        environment = {**os.environ, "EMOTIOND_HISTORY__URL": url, "EMOTIOND_BUS__RESULTS_ENDPOINT": endpoint,
                       "EMOTIOND_HISTORY__COMMIT_SECONDS": str(commit_seconds), "PYTHONUNBUFFERED": "1", **env}
        with log_path.open("a") as log_file:
            self.process = subprocess.Popen([sys.executable, "-c", _ZYGOTE], cwd=REPO, env=environment,
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_file,
                                            text=True)

    def fork(self) -> int:
        """Start one writer; returns its pid."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("start\n")
        self.process.stdin.flush()
        return int(self.process.stdout.readline())

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)


def alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False
