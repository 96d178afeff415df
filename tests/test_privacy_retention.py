"""``[privacy] retention_days`` caps every store: the history's samples and tracks (through the writer's own
retention, with a fake clock), the logger's day files (a real ``emotiond log`` process purging at start) and the
console's ring of recent events. Each store may keep less than the cap (a camera's shorter override stays), never
more."""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry

from emotiond.clients.history.metrics import HistoryMetrics
from emotiond.clients.history.retention import DAY
from emotiond.clients.history.store import HistoryStore
from emotiond.clients.history.writer import HistoryWriter
from emotiond.clients.privacy.retention import capped_history, max_age_seconds
from emotiond.clients.web.ring import EventRing, Query
from emotiond.core.settings import Settings

from support.daemon import EMOTIOND, REPO, child_env, kill_leftovers, wait_for
from support.history import T0, FakeClock, make_writer, table_rows, tracked_result

AGES_DAYS = {1: 100.0, 2: 10.0, 3: 3.0, 4: 1.5, 5: 0.5}  # track id: its age at T0


def seed(url: str) -> None:
    """Ten seconds of one tracked face per age and camera, written by a writer without any cap."""
    for track, age in AGES_DAYS.items():
        for camera in ("cam0", "door"):
            start = T0 - age * DAY
            clock = FakeClock(start)
            writer = make_writer(url, clock)
            writer.handle([tracked_result(seq, start + seq / 10, [(track, "happy")], camera=camera,
                                          ended=(track,) if seq == 99 else ()) for seq in range(100)])
            clock.now = start + 70
            writer.handle([])
            writer.close()


def kept(url: str) -> tuple[set[tuple[str, int]], set[tuple[str, int]]]:
    """(camera, track id) of the tracks left, and of the tracks that still have samples."""
    tracks = {row["id"]: (row["camera"], row["track_id"]) for row in table_rows(url, "tracks")}
    return set(tracks.values()), {tracks[row["track"]] for row in table_rows(url, "samples")}


def test_history_keeps_no_more_than_retention_days(tmp_path):
    url = f"sqlite:///{tmp_path / 'history.sqlite'}"
    seed(url)
    settings = Settings.model_validate({"history": {"url": url, "cameras": {"door": {"samples_days": 1}}},
                                        "privacy": {"retention_days": 2}})
    options = capped_history(settings)
    assert (options.samples_days, options.events_days, options.cameras["door"].samples_days) == (2, 2, 1)
    with HistoryStore(url) as store:
        writer = HistoryWriter(store, settings, metrics=HistoryMetrics(CollectorRegistry()), clock=FakeClock(T0),
                               writer_id="test")
        writer.retention.purge()
    tracks, sampled = kept(url)
    # Without the cap tracks are kept 90 days and samples 7: the 10- and 3-day-old ones would stay.
    assert tracks == {(camera, track) for camera in ("cam0", "door") for track in (4, 5)}
    assert sampled == {("cam0", 4), ("cam0", 5), ("door", 5)}  # door keeps less (1 day), as its override says
    assert len(table_rows(url, "minutes")) == 2 * len(AGES_DAYS), "minute counts describe no one and stay"


def day_file(folder: Path, days_ago: int, ext: str = "jsonl") -> Path:
    day = datetime.fromtimestamp(time.time() - days_ago * DAY, UTC).strftime("%Y-%m-%d")
    path = folder / f"emotiond-{day}.000.{ext}"
    path.write_text('{"camera":"cam0"}\n')
    return path


def test_the_logger_removes_day_files_older_than_retention_days(tmp_path):
    out = tmp_path / "logs"
    out.mkdir()
    old = [day_file(out, 30), day_file(out, 4, "csv"), day_file(out, 3)]
    young = [day_file(out, 2), day_file(out, 1, "csv"), day_file(out, 0)]
    other = out / "notes-2001-01-01.000.txt"
    other.write_text("not a log file\n")
    env = child_env(tmp_path / "run", EMOTIOND_PRIVACY__RETENTION_DAYS="3")
    process = subprocess.Popen([*EMOTIOND, "log", "--out", str(out)], cwd=REPO, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: not any(path.exists() for path in old) or process.poll() is not None, 60,
                 "the logger's first purge")
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert not any(path.exists() for path in old)
        assert all(path.exists() for path in young) and other.exists()
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        kill_leftovers([process])


def test_the_console_ring_serves_nothing_older_than_retention_days():
    now = time.time()

    def filled(settings: Settings) -> EventRing:
        ring = EventRing(100, max_age_seconds(settings))
        for index, age_days in enumerate((5.0, 2.0, 0.5, 0.0)):
            at = now - age_days * DAY
            ring.add_event({"camera": "cam0", "at": at, "emotion": "happy"}, {"n": index})
        return ring

    uncapped = filled(Settings())
    assert len(uncapped) == 4 and len(uncapped.query(Query())) == 4  # positive control: the ring keeps them all
    capped = filled(Settings.model_validate({"privacy": {"retention_days": 1}}))
    assert [item["n"] for item in capped.query(Query())] == [3, 2]
    assert len(capped) == 2
