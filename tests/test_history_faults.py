"""History faults: the writer SIGKILLed during heavy writing, a full disk, a foreign or newer database file, and
PostgreSQL going away and coming back."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest

from emotiond.clients.history import schema

from support.clients import CraftedPublisher
from support.daemon import child_env, run_cli, wait_for
from support.history import T0, FakeClock, WriterZygote, alive, make_writer, table_rows, tracked_result

KILLS = 20
COMMIT_SECONDS = 0.2


class BusyPublisher:
    """Results with 20 tracked faces each, about 100 a second, on an XPUB a writer subscribes to."""

    def __init__(self, endpoint: str):
        self.publisher = CraftedPublisher(endpoint)
        self.stop = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        seq = 0
        while not self.stop.is_set():
            now = time.time()
            faces = [(track, "happy" if (seq // 50 + track) % 2 else "sad") for track in range(20)]
            self.publisher.publish(tracked_result(seq, now, faces))
            seq += 1
            self.sent = seq
            time.sleep(0.01)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.publisher.close()


def writer_state(path: Path) -> dict:
    """The writer's row in meta, read without a write lock (and without creating anything)."""
    if not path.exists():
        return {}
    try:
        connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            rows = connection.execute("SELECT value FROM meta WHERE key LIKE 'writer:%'").fetchall()
        finally:
            connection.close()
    except sqlite3.OperationalError:
        return {}
    return json.loads(rows[0][0]) if rows else {}


def integrity(path: Path) -> str:
    connection = sqlite3.connect(path)
    try:
        return connection.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        connection.close()


@pytest.mark.serial
def test_sigkill_during_heavy_writing_keeps_the_database_intact(tmp_path):
    """Timed (the loss bound and the whole run's length), so it runs alone."""
    path = tmp_path / "history.sqlite"
    url = f"sqlite:///{path}"
    endpoint = f"ipc://{tmp_path / 'results.sock'}"
    publisher = BusyPublisher(endpoint)
    log_path = tmp_path / "writer.log"
    env = {"EMOTIOND_HISTORY__SAMPLE_HZ": "60", "EMOTIOND_BUS__RUNTIME_DIR": str(tmp_path / "run")}
    kills: list[tuple[float, float]] = []  # (last commit seen before the kill, kill time)
    zygote = WriterZygote(url, endpoint, log_path, COMMIT_SECONDS, **env)
    began = time.monotonic()
    try:
        for _ in range(KILLS):
            pid = zygote.fork()
            seen: set[float] = set()
            try:
                # Killed once it has committed twice: mid-stream, with a batch open.
                wait_for(lambda pid=pid, seen=seen: _commits(path, pid, seen) >= 2, 30, "the writer's commits")
                time.sleep(COMMIT_SECONDS * 0.6)
                state = writer_state(path)
                os.kill(pid, signal.SIGKILL)
                killed_at = time.time()
                wait_for(lambda pid=pid: not alive(pid), 10, "the killed writer to go")
            finally:
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)
            kills.append((state["committed"], killed_at))
            assert integrity(path) == "ok"
        pid = zygote.fork()
        wait_for(lambda: writer_state(path).get("pid") == pid, 30, "the last writer's first commit")
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not alive(pid), 30, "the last writer to stop")
    finally:
        zygote.close()
        publisher.close()
    took = time.monotonic() - began
    assert integrity(path) == "ok"
    assert writer_state(path)["open"] is False
    gaps = [g for g in table_rows(url, "gaps", "start") if g["reason"] == "writer_lost"]
    assert len(gaps) == KILLS, gaps
    for gap, (committed, killed_at) in zip(gaps, kills, strict=True):
        assert gap["start"] >= committed - 1e-6, "a gap starts at the last commit"
        assert gap["start"] <= killed_at <= gap["end"]
        assert killed_at - gap["start"] < 3 * COMMIT_SECONDS + 1.0, "the loss is the open batch only"
    assert len(table_rows(url, "samples")) > KILLS * 100
    ends = [track["end_reason"] for track in table_rows(url, "tracks")]
    assert None not in ends, "every track a killed writer left open is ended by the next one"
    assert ends.count("writer_lost") >= KILLS * 20 and ends.count("stop") == 20
    assert log_path.read_text().count("stopped without closing") == KILLS
    assert took < 60, f"{KILLS} kills took {took:.0f} s"


def _commits(path: Path, pid: int, seen: set[float]) -> int:
    """Commits of the writer ``pid`` seen so far (each commit stamps its time in the writer's meta row)."""
    state = writer_state(path)
    if state.get("pid") == pid:
        seen.add(state["committed"])
    return len(seen)


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 1 MiB tmpfs (we run as root in the suite's container; make test does too)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.fail(f"cannot mount a small tmpfs (the disk-full test needs root): {done.stderr.strip()}",
                    pytrace=False)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_full_disk_is_reported_once_and_writing_resumes(small_disk, caplog):
    path = small_disk / "history.sqlite"
    url = f"sqlite:///{path}"
    clock = FakeClock()
    writer = make_writer(url, clock, buffer_rows=1000, sample_hz=60)
    writer.handle([tracked_result(0, T0, [(1, "happy")])])
    assert writer.flush()
    filler = small_disk / "filler"
    free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
    filler.write_bytes(b"\0" * max(0, free - 64 * 1024))  # leave 64 KiB

    seq = 1
    failures = 0
    with caplog.at_level(logging.INFO):
        for _ in range(60):
            results = [tracked_result(seq + i, T0 + (seq + i) / 30, [(t, "sad") for t in range(1, 11)])
                       for i in range(30)]
            seq += 30
            clock.now = results[-1].captured_at
            writer.handle(results)  # the live side keeps taking results
            if not writer.flush():
                failures += 1
            if failures >= 6:
                break
        assert failures >= 6, "the small disk never filled up"
        errors = [r for r in caplog.records if r.levelno == logging.ERROR and "cannot write" in r.getMessage()]
        assert len(errors) == 1 and "disk_full" in errors[0].getMessage(), [r.getMessage() for r in errors]
        assert writer.batch.rows() <= 1000, "held rows stay bounded"
        assert writer.metrics.registry.get_sample_value("emotiond_history_dropped_rows_total",
                                                        {"reason": "buffer_full"}) > 0
        filler.unlink()
        writer._retry_at = 0.0
        assert writer.flush(), "writing resumes once there is space"
        assert any("writing again" in r.getMessage() for r in caplog.records)
    writer.close()
    registry = writer.metrics.registry
    assert registry.get_sample_value("emotiond_history_errors_total", {"reason": "disk_full"}) == failures
    assert integrity(path) == "ok"
    gaps = table_rows(url, "gaps")
    assert [g["reason"] for g in gaps] == ["disk_full"], gaps
    newest = max(row["t"] for row in table_rows(url, "samples"))
    assert newest == pytest.approx(clock.now, abs=0.1), "the rows held while the disk was full were written"


@pytest.mark.parametrize("kind", ["not_sqlite", "other_application", "newer_version"])
def test_a_foreign_or_newer_file_is_refused_in_one_line_and_left_alone(tmp_path, kind):
    path = tmp_path / "history.sqlite"
    if kind == "not_sqlite":
        path.write_bytes(b"these are somebody's notes\n" * 100)
    else:
        connection = sqlite3.connect(path)
        connection.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        connection.execute("INSERT INTO notes (body) VALUES ('keep me')")
        if kind == "newer_version":
            connection.execute(f"PRAGMA application_id = {schema.APPLICATION_ID}")
            connection.execute(f"PRAGMA user_version = {schema.SCHEMA_VERSION + 1}")
        connection.commit()
        connection.close()
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    env = child_env(tmp_path / "run", EMOTIOND_HISTORY__URL=str(path))
    done = run_cli("run", "--source", "demo", "--workers", "1", "--metrics-port", "0", env=env, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "refusing" in lines[0] and str(path) in lines[0], lines
    assert {"not_sqlite": "not an SQLite database", "other_application": "another application",
            "newer_version": "newer emotiond"}[kind] in lines[0]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("history")) == ["history.sqlite"]


def test_postgres_restart_buffers_reconnects_and_counts_what_it_dropped(postgres_server, postgres_url, caplog):
    clock = FakeClock()
    writer = make_writer(postgres_url, clock, buffer_rows=500, sample_hz=60)
    writer.handle([tracked_result(0, T0, [(1, "happy")])])
    assert writer.flush()
    seq = 1
    postgres_server.stop()
    try:
        with caplog.at_level(logging.INFO):
            for _ in range(4):  # 4 x 300 samples while the server is down: 500 are held, the oldest dropped
                results = [tracked_result(seq + i, T0 + (seq + i) / 30, [(t, "sad") for t in range(1, 11)])
                           for i in range(30)]
                seq += 30
                clock.now = results[-1].captured_at
                writer.handle(results)
                writer._retry_at = 0.0
                assert not writer.flush()
            errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
            assert len(errors) == 1 and "unreachable" in errors[0], errors
    finally:
        postgres_server.start()
    writer._retry_at = 0.0
    assert writer.flush(), "the writer reconnects to the restarted server"
    writer.handle([tracked_result(seq, T0 + seq / 30, [(1, "happy")])])
    assert writer.flush()
    writer.close()
    registry = writer.metrics.registry
    dropped = registry.get_sample_value("emotiond_history_dropped_rows_total", {"reason": "buffer_full"})
    assert dropped == 4 * 300 + 10 - 500  # the held rows include the 10 appeared and changed events
    assert registry.get_sample_value("emotiond_history_errors_total", {"reason": "unreachable"}) == 4
    samples = table_rows(postgres_url, "samples")
    assert len(samples) == 1 + 4 * 300 - dropped + 1
    (gap,) = table_rows(postgres_url, "gaps")
    assert gap["reason"] == "unreachable"
    kept = sorted(row["t"] for row in samples)
    assert gap["start"] > T0 and gap["end"] < kept[2], "the oldest samples were the ones dropped"


def test_a_refused_track_is_left_out_and_the_others_go_on(history_url, caplog):
    """A track whose row the database refuses (here its key is taken) costs one batch, recorded as a gap; it is then
    left out until it ends, and every other track keeps being written."""
    clock = FakeClock()
    writer = make_writer(history_url, clock)
    writer.store.prepare()
    with writer.store.begin() as connection:
        connection.execute(schema.tracks.insert().values(
            camera="cam0", track_key=f"cam0/w1/5/{round(T0 * 1000)}", track_id=5, worker="w1", first_seen=T0,
            last_seen=T0, mean_scores="{}", samples=0, model="other"))
    first = [tracked_result(seq, T0 + seq / 10, [(5, "happy"), (6, "sad")]) for seq in range(20)]
    clock.now = T0 + 2
    writer.handle(first)
    with caplog.at_level(logging.ERROR):
        assert not writer.flush()
    assert any("refused a batch" in r.getMessage() for r in caplog.records)
    later = [tracked_result(seq, T0 + seq / 10, [(5, "happy"), (6, "sad")], ended=(5, 6) if seq == 59 else ())
             for seq in range(20, 60)]
    clock.now = T0 + 6
    writer.handle(later)
    assert writer.flush()
    writer.close()
    tracks = {t["track_id"]: t for t in table_rows(history_url, "tracks") if t["model"] != "other"}
    assert set(tracks) == {6} and tracks[6]["end_reason"] == "left"
    samples = table_rows(history_url, "samples")
    assert samples and {s["track"] for s in samples} == {tracks[6]["id"]}
    assert min(s["t"] for s in samples) >= T0 + 2, "the refused batch's rows are gone"
    (gap,) = table_rows(history_url, "gaps")
    assert gap["reason"] == "rejected" and gap["start"] == T0 and gap["end"] <= T0 + 2
    assert writer.metrics.registry.get_sample_value("emotiond_history_dropped_rows_total",
                                                    {"reason": "rejected"}) > 0
