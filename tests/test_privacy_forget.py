"""``emotiond privacy forget``: one command erases a camera's time range, or one track, from the history database
and the logger's files, and says what it removed.

The history is written by the real writer and the log files by the logger's own record functions; the command runs
as a process. A range takes every track seen in it whole (its faces before and after the range too), the other
camera and the anonymous records stay, and bad input is one line with exit status 2.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from emotiond.__main__ import main
from emotiond.clients import records
from emotiond.clients.gaps import Gap
from emotiond.core import protocol

from support.daemon import child_env, run_cli
from support.history import T0, FakeClock, make_writer, table_rows, tracked_result

# door: track 2 is seen 100..110 s after T0, inside the range 105..200; track 3 only at 300..310, after it.
# cam0: track 1 at 100..110, inside the range's times but on another camera.
SCENES = (("cam0", 1, 100.0), ("door", 2, 100.0), ("door", 3, 300.0))
RANGE = (T0 + 105.0, T0 + 200.0)


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def results() -> list[protocol.Result]:
    made = []
    for camera, track, offset in SCENES:
        start = T0 + offset
        made += [tracked_result(seq, start + seq / 10, [(track, "happy"), (None, "sad")], camera=camera,
                                ended=(track,) if seq == 99 else ()) for seq in range(100)]
    return made


@pytest.fixture
def stores(tmp_path: Path) -> tuple[str, Path, dict[str, str]]:
    """A history database and a log folder (JSONL and CSV) holding the same three tracks."""
    url = f"sqlite:///{tmp_path / 'history.sqlite'}"
    clock = FakeClock(T0)
    writer = make_writer(url, clock)
    writer.handle(results())
    clock.now = T0 + 400
    writer.handle([])
    writer.close()
    logs = tmp_path / "logs"
    logs.mkdir()
    day = datetime.fromtimestamp(T0, UTC).strftime("%Y-%m-%d")
    others: list[records.Record] = [
        protocol.Status("door", "eos", "end of stream", T0 + 150.0, 300),
        protocol.TracksEnded("door", (2, 3), "eos", T0 + 150.0, 99, "w1"),
        Gap("door", 5, 6, T0 + 150.0),
        protocol.Aggregate("door", T0 + 120.0, T0 + 180.0, 60.0, 10, True, None, {}, False, "w1")]
    (logs / f"emotiond-{day}.000.jsonl").write_text("".join(records.json_line(r) for r in [*results(), *others]))
    (logs / f"emotiond-{day}.000.csv").write_text(
        records.csv_text((row for r in results() for row in records.csv_rows(r)), header=True))
    return url, logs, child_env(tmp_path / "run")


def log_results(logs: Path) -> list[dict]:
    lines = [json.loads(line) for path in sorted(logs.glob("*.jsonl")) for line in path.read_text().splitlines()]
    return lines


def faces_of(lines: list[dict], camera: str) -> set[int | None]:
    return {face.get("track_id") for line in lines if "kind" not in line and line["camera"] == camera
            for face in line["faces"]}


def test_forget_a_cameras_range_in_the_history_and_the_logs(stores):
    url, logs, env = stores
    done = run_cli("privacy", "forget", "--db", url, "--camera", "door", "--between", iso(RANGE[0]), iso(RANGE[1]),
                   "--logs", str(logs), "--json", env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["history"]["tracks"] == 1 and report["history"]["samples"] > 0
    tracks = {(row["camera"], row["track_id"]) for row in table_rows(url, "tracks")}
    assert tracks == {("cam0", 1), ("door", 3)}, "track 2 was seen in the range: it goes whole"
    assert {row["camera"] for row in table_rows(url, "minutes")} == {"cam0", "door"}, "anonymous counts stay"

    lines = log_results(logs)
    door = [line for line in lines if "kind" not in line and line["camera"] == "door"]
    in_range = [line for line in door if RANGE[0] <= line["captured_at"] <= RANGE[1]]
    assert in_range == [] and len(door) == 100 + 50, "the range's results go, those before it lose track 2"
    assert faces_of(lines, "door") == {3, None} and faces_of(lines, "cam0") == {1, None}
    ends = [line for line in lines if line.get("kind") == "tracks"]
    assert [line["ended_tracks"] for line in ends] == [[3]]
    assert {line.get("kind") for line in lines} >= {"status", "gap", "aggregate"}, "records naming no one stay"
    csv_rows = (logs.glob("*.csv").__next__()).read_text().splitlines()[1:]
    assert len(csv_rows) == 2 * 300 - 2 * 50, "CSV: the door rows captured in the range went"
    # JSONL: 50 results of the range (two faces each) and track 2's 50 faces before it; CSV: 100 face rows.
    assert report["logs"] == {"files_rewritten": 2, "results": 50, "faces": 2 * 50 + 50 + 2 * 50, "track_ends": 1}


def test_forget_one_track_by_either_id_and_report_it_in_words(stores):
    url, logs, env = stores
    done = run_cli("privacy", "forget", "--db", url, "--track", "1", "--logs", str(logs), env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "history: forgot 1 tracks, 2 track events" in done.stdout, done.stdout
    assert "logs: removed 0 results and 100 faces, 0 track ends changed, in 1 files" in done.stdout, done.stdout
    assert {(row["camera"], row["track_id"]) for row in table_rows(url, "tracks")} == {("door", 2), ("door", 3)}
    assert faces_of(log_results(logs), "cam0") == {None}, "the other face of each frame stays"

    row = next(row["id"] for row in table_rows(url, "tracks") if row["track_id"] == 3)
    done = run_cli("privacy", "forget", "--db", url, "--history-track", str(row), "--logs", str(logs), env=env)
    assert done.returncode == 0 and "history: forgot 1 tracks" in done.stdout, done.stdout + done.stderr
    assert faces_of(log_results(logs), "door") == {2, None}, "the history's row named the bus id the logs carry"
    assert [line["ended_tracks"] for line in log_results(logs) if line.get("kind") == "tracks"] == [[2]]
    done = run_cli("privacy", "forget", "--db", url, "--history-track", str(row), env=env)
    assert done.returncode == 2 and "no track" in done.stderr


@pytest.mark.parametrize(("args", "message"), [
    ((), "give one of --between A B"),
    (("--track", "1", "--history-track", "1"), "give one of --between A B"),
    (("--camera", "door/1", "--track", "1"), "is not a camera name"),
    (("--between", "2026-05-02", "2026-05-01"), "A must not be after B"),
    (("--between", "yesterday", "now"), "is not a time"),
    (("--track", "1", "--logs", "/nonexistent/logs"), "not a folder"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    status = main(["privacy", "forget", "--db", str(tmp_path / "h.sqlite"), *args])
    err = capsys.readouterr().err
    assert status == 2, err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "h.sqlite").exists(), "refused input created no database"
