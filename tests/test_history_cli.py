"""``emotiond history`` as a user runs it, on both engines: the summary, tracks, events and markers it prints are
the queries' own; mark, forget and export; every bad value is one line and exit status 2."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from emotiond.__main__ import main
from emotiond.clients.history import queries
from emotiond.clients.history.store import HistoryReader
from emotiond.clients.history.times import iso
from emotiond.clients.history.valence import VALENCE_FORMULA

from support.daemon import child_env, run_cli
from support.history_data import T0, seed

SINCE, UNTIL = iso(T0), iso(T0 + 3600)


@pytest.fixture
def seeded(history_url):
    return seed(history_url)


def history(url: str, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    done = run_cli("history", *args, "--db", url, env=child_env(tmp_path / "run"))
    return done.returncode, done.stdout, done.stderr


def test_summary_json_is_the_querys_and_the_table_shows_gaps_and_markers(seeded, tmp_path):
    code, out, err = history(seeded.url, tmp_path, "summary", "--camera", "lobby", "--since", SINCE, "--until",
                             UNTIL, "--bucket", "5m", "--json")
    assert code == 0, err
    with HistoryReader(seeded.url) as reader:
        assert json.loads(out) == queries.summary(reader, "lobby", T0, T0 + 3600, 300)
    code, out, err = history(seeded.url, tmp_path, "summary", "--camera", "lobby", "--since", SINCE, "--until",
                             UNTIL, "--bucket", "10m")
    assert code == 0, err
    lines = out.splitlines()
    assert VALENCE_FORMULA in lines[0]
    header = next(line for line in lines if line.startswith("start (UTC)")).split()
    assert header[3:] == ["happy", "neutral", "sad", "valence", "coverage"]
    start = lines.index(next(line for line in lines if line.startswith("start (UTC)")))
    rows = [line.split() for line in lines[start + 1:start + 7]]
    assert rows[0][2:] == ["1", "67%", "0%", "33%", rows[0][6], "100%"]  # 400 s happy, 200 s sad, all analysed
    assert rows[1][2:] == ["2", "0%", "100%", "0%", "0.00", "49%"]  # minute 10 missed, 11-14 absent, 15-19 half
    assert all(row[2:] == ["0", "-", "-", "-", "-", "gap"] for row in rows[2:])
    assert any("marker" in line and "new sign" in line for line in lines)
    assert not any("hall only" in line for line in lines)


def test_tracks_and_events_page_with_before(seeded, tmp_path):
    code, out, err = history(seeded.url, tmp_path, "tracks", "--since", SINCE, "--until", UNTIL, "--limit", "2",
                             "--json")
    assert code == 0, err
    first = json.loads(out)
    assert len(first["tracks"]) == 2 and first["next_before"] is not None
    code, out, _ = history(seeded.url, tmp_path, "tracks", "--since", SINCE, "--until", UNTIL, "--limit", "2",
                           "--before", repr(first["next_before"]), "--json")
    second = json.loads(out)
    assert {t["id"] for t in first["tracks"] + second["tracks"]} == set(seeded.tracks.values())
    assert second["next_before"] is None
    code, out, _ = history(seeded.url, tmp_path, "tracks", "--camera", "hall", "--since", SINCE, "--until", UNTIL)
    assert code == 0 and out.splitlines()[0].split()[:3] == ["id", "camera", "start"]
    assert [line.split()[1] for line in out.splitlines()[1:]] == ["hall"]
    code, out, _ = history(seeded.url, tmp_path, "track", str(seeded.tracks["a"]), "--json")
    assert [e["kind"] for e in json.loads(out)["events"]] == ["appeared", "changed", "disappeared"]
    code, out, _ = history(seeded.url, tmp_path, "events", "--camera", "hall", "--since", SINCE, "--until", UNTIL,
                           "--json")
    assert [e["kind"] for e in json.loads(out)["events"]] == ["disappeared", "appeared"]


def test_mark_then_forget_report_what_they_did(seeded, tmp_path):
    code, out, err = history(seeded.url, tmp_path, "mark", "new sign", "--camera", "lobby", "--at", iso(T0 + 1200),
                             "--json")
    assert code == 0, err
    marker = json.loads(out)["id"]
    code, out, _ = history(seeded.url, tmp_path, "markers", "--camera", "lobby", "--since", SINCE, "--until", UNTIL,
                           "--json")
    labels = [(m["id"], m["label"], m["source"]) for m in json.loads(out)["markers"]]
    assert labels[-1] == (marker, "new sign", "cli") and len(labels) == 3
    code, out, err = history(seeded.url, tmp_path, "forget", "--camera", "lobby", "--between", iso(T0),
                             iso(T0 + 950))
    assert code == 0, err
    assert out.startswith(f"forgot 2 tracks, {seeded.events['a'] + seeded.events['b']} track events and "
                          f"{seeded.samples['a'] + seeded.samples['b']} samples")
    code, out, _ = history(seeded.url, tmp_path, "forget", "--track", str(seeded.tracks["c"]), "--json")
    assert json.loads(out)["tracks"] == 1
    with HistoryReader(seeded.url) as reader:
        assert [t["id"] for t in queries.tracks(reader, None, T0, T0 + 3600)["tracks"]] == [seeded.tracks["open"]]


def test_export_csv_and_parquet_files(seeded, tmp_path):
    out = tmp_path / "samples.csv"
    code, text, err = history(seeded.url, tmp_path, "export", "--format", "csv", "--since", SINCE, "--until",
                              UNTIL, "--out", str(out))
    assert code == 0, err
    total = sum(seeded.samples.values())
    assert text.strip() == f"{total} samples rows written to {out}"
    lines = out.read_text().splitlines()
    comments = [line for line in lines if line.startswith("#")]
    assert any("UTC" in line for line in comments) and f"# valence: {VALENCE_FORMULA}" in comments
    assert "# model: fer-test" in comments
    assert len(list(csv.DictReader(line for line in lines if not line.startswith("#")))) == total
    parquet = tmp_path / "minutes.parquet"
    code, text, err = history(seeded.url, tmp_path, "export", "--format", "parquet", "--table", "minutes",
                              "--camera", "hall", "--since", SINCE, "--until", UNTIL, "--out", str(parquet), "--json")
    assert code == 0, err
    assert json.loads(text)["rows"] == 5
    import pyarrow.parquet as pq

    assert pq.read_table(parquet).column("camera").to_pylist() == ["hall"] * 5


@pytest.fixture
def sqlite_history(tmp_path) -> str:
    return seed(f"sqlite:///{tmp_path / 'h.sqlite'}").url


@pytest.mark.parametrize(("args", "message"), [
    (("summary", "--since", "yesterday"), "--since: 'yesterday' is not a time"),
    (("summary", "--bucket", "7s"), "whole number of minutes"),
    (("summary", "--bucket", "0"), "positive duration"),
    (("summary", "--since", "1h", "--until", "2h"), "--since must be before --until"),
    (("summary", "--bucket", "1m", "--since", "90d"), "buckets"),
    (("tracks", "--before", "tomorrow"), "--before"),
    (("forget", "--camera", "lobby"), "--between A B"),
    (("forget", "--between", "1h", "2h"), "A must not be after B"),
    (("forget", "--track", "3", "--since", "2h"), "--between"),
    (("mark", ""), "label is empty"),
    (("mark", "x" * 300), "longer than 200"),
    (("mark", "ok", "--at", "soon"), "--at"),
    (("track", "999999"), "no track 999999"),
    (("export", "--out", "/nonexistent-folder/x.csv"), "is not a folder"),
])
def test_bad_values_are_one_line_and_exit_2(sqlite_history, capsys, args, message):
    assert main(["history", *args, "--db", sqlite_history]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and err.startswith("emotiond history: "), err


@pytest.mark.parametrize("args", [("tracks", "--limit", "0"), ("export", "--format", "xls", "--out", "x"),
                                  ("track", "-3"), ()])
def test_bad_flags_exit_2_with_argparses_line(sqlite_history, capsys, args):
    with pytest.raises(SystemExit) as stop:
        main(["history", *args, "--db", sqlite_history])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("emotiond history")


def test_a_missing_or_foreign_database_is_one_line_and_left_alone(tmp_path, capsys):
    missing = tmp_path / "none" / "history.sqlite"
    assert main(["history", "summary", "--db", str(missing)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"emotiond history: no history at {missing} yet (the history writer creates it: `emotiond run` " \
                  "with [history] enabled)"
    assert not missing.parent.exists()
    assert main(["history", "mark", "x", "--db", str(missing.parent / "x" / "y.sqlite"), "--camera", "bad\x01"]) == 2
    assert capsys.readouterr().err.strip().startswith("emotiond history: camera must be a camera name")
    assert not missing.parent.exists()  # refused before anything was created
    foreign = tmp_path / "notes.txt"
    foreign.write_text("my notes\n")
    for action in (["summary"], ["mark", "hello"], ["forget", "--track", "1"]):
        assert main(["history", *action, "--db", str(foreign)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "not an SQLite database" in err
    assert foreign.read_text() == "my notes\n"
