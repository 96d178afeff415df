"""The history's queries on both engines: buckets, gaps, shares and valence; paging by ``before``; a track's
timeline; markers; forget; export. The database is written through the store and the schema's Core tables."""

from __future__ import annotations

import csv
import json
import time

import pytest
import sqlalchemy as sa

from emotiond.clients.history import export, forget, markers, queries, schema
from emotiond.clients.history.store import HistoryReader, HistoryStore
from emotiond.clients.history.valence import VALENCE_FORMULA, valence
from emotiond.core.errors import UsageError

from support.history_data import T0, add_track, scores_for, seed

HOUR = 3600.0


@pytest.fixture
def seeded(history_url):
    return seed(history_url)


@pytest.fixture
def reader(seeded):
    handle = HistoryReader(seeded.url)
    yield handle
    handle.close()


@pytest.fixture
def store(seeded):
    handle = HistoryStore(seeded.url)
    yield handle
    handle.close()


def test_summary_buckets_shares_valence_and_coverage(reader):
    result = queries.summary(reader, "lobby", T0, T0 + 1200, bucket_seconds=300)
    assert result["valence_formula"] == VALENCE_FORMULA
    assert list(result["cameras"]) == ["lobby"]
    buckets = result["cameras"]["lobby"]
    assert [b["start"] for b in buckets] == [T0, T0 + 300, T0 + 600, T0 + 900]
    first = buckets[0]  # five minutes of 40 s happy + 20 s sad, every frame analysed
    assert first["face_seconds"] == {"happy": 200.0, "sad": 100.0}
    assert first["shares"] == {"happy": pytest.approx(2 / 3, abs=1e-4), "sad": pytest.approx(1 / 3, abs=1e-4)}
    happy, sad = valence(scores_for("happy", 1.0)), valence(scores_for("sad", 1.0))
    assert first["valence"] == pytest.approx((200 * happy + 100 * sad) / 300, abs=1e-4)
    assert (first["coverage"], first["faces"], first["frames_analysed"]) == (1.0, 1, 3000)
    # minute 10 was seen but not analysed; 11-14 are missing: coverage 0 then nothing, never "neutral"
    third = buckets[2]
    assert (third["coverage"], third["face_seconds"], third["valence"], third["frames_missed"]) == (0.0, {}, None, 60)
    last = buckets[3]  # minutes 15-19: two faces, half the frames missed
    assert (last["faces"], last["coverage"], last["shares"]) == (2, 0.5, {"neutral": 1.0})
    assert last["valence"] == pytest.approx(0.0, abs=1e-6)


def test_a_range_with_no_minutes_is_all_gaps_not_neutral(reader):
    result = queries.summary(reader, "lobby", T0 + 660, T0 + 900, bucket_seconds=60)
    buckets = result["cameras"]["lobby"]
    assert len(buckets) == 4
    assert all(b["coverage"] is None and b["valence"] is None and b["shares"] == {} for b in buckets)
    unknown = queries.summary(reader, "nowhere", T0, T0 + 600, bucket_seconds=300)
    assert [b["coverage"] for b in unknown["cameras"]["nowhere"]] == [None, None]


def test_summary_of_every_camera_aligns_buckets_and_lists_markers(reader):
    result = queries.summary(reader, None, T0 + 120, T0 + 700, bucket_seconds=600)
    assert sorted(result["cameras"]) == ["hall", "lobby"]
    assert [b["start"] for b in result["cameras"]["hall"]] == [T0, T0 + 600]  # whole buckets from T0
    assert result["cameras"]["hall"][0]["face_seconds"] == {"angry": 300.0}
    assert [m["label"] for m in result["markers"]] == ["new sign", "doors open", "hall only"]
    lobby = queries.summary(reader, "lobby", T0, T0 + 700, bucket_seconds=600)
    assert [m["label"] for m in lobby["markers"]] == ["new sign", "doors open"]  # its own and every camera's


def test_tracks_page_by_before_without_gaps_or_repeats(seeded, store, reader):
    with store.begin() as connection:  # 23 more tracks, three pairs starting at the same moment
        for index in range(23):
            first = T0 + 2000 + (index - index % 2 if index < 6 else index) * 5
            add_track(connection, "lobby", 100 + index, first, first + 3, ["happy"])
    expected = {row.id for row in _all(reader, schema.tracks) if row.first_seen >= T0}
    seen, before, pages = [], None, 0
    while True:
        page = queries.tracks(reader, None, T0, T0 + HOUR, before=before, limit=5)
        pages += 1
        times = [t["first_seen"] for t in page["tracks"]]
        assert times == sorted(times, reverse=True)
        assert all(before is None or t < before for t in times)
        seen += [t["id"] for t in page["tracks"]]
        before = page["next_before"]
        if before is None:
            break
    assert sorted(seen) == sorted(expected) and len(seen) == len(set(seen)) == 27
    assert pages >= 6
    lobby = queries.tracks(reader, "lobby", T0, T0 + 1200)["tracks"]
    assert [t["id"] for t in lobby] == [seeded.tracks["open"], seeded.tracks["b"], seeded.tracks["a"]]
    assert lobby[1]["duration"] == 100.0 and lobby[1]["end_reason"] == "eos"
    assert lobby[0]["end_reason"] is None


def _all(reader, table):
    with reader.connect() as connection:
        return list(connection.execute(sa.select(table)))


def test_events_newest_first_and_paged(seeded, reader):
    everything = queries.events(reader, None, T0, T0 + HOUR, limit=1000)["events"]
    assert len(everything) == sum(seeded.events.values())
    assert [e["t"] for e in everything] == sorted((e["t"] for e in everything), reverse=True)
    first = queries.events(reader, "lobby", T0, T0 + HOUR, limit=2)
    rest = queries.events(reader, "lobby", T0, T0 + HOUR, before=first["next_before"], limit=1000)
    lobby = first["events"] + rest["events"]
    assert {e["camera"] for e in lobby} == {"lobby"}
    assert len(lobby) == seeded.events["a"] + seeded.events["b"] + seeded.events["open"]
    changed = [e for e in lobby if e["kind"] == "changed"]
    assert [(e["previous"], e["emotion"], e["track"]) for e in changed] == [("happy", "sad", seeded.tracks["a"])]


def test_a_tracks_timeline_has_its_samples_and_events_in_order(seeded, reader):
    timeline = queries.track(reader, seeded.tracks["a"])
    assert timeline["track"]["camera"] == "lobby" and timeline["track"]["dominant"] == "happy"
    assert [s["emotion"] for s in timeline["samples"]] == ["happy"] * 4 + ["sad"] * 4
    assert timeline["samples"][0]["t"] == T0 + 10
    assert timeline["samples"][-1]["scores"]["sad"] == pytest.approx(0.9)
    assert [e["kind"] for e in timeline["events"]] == ["appeared", "changed", "disappeared"]
    assert queries.track(reader, 10**9) is None


def test_markers_added_through_the_store_for_one_camera_or_all(store, reader):
    marker = markers.add_marker(store, "  new menu ", "hall", T0 + 1800, "api")
    everywhere = markers.add_marker(store, "fire drill", None, T0 + 1900)
    hall = queries.markers(reader, "hall", T0 + 1700, T0 + 2000)["markers"]
    assert [(m["id"], m["label"], m["camera"], m["source"]) for m in hall] == [
        (marker, "new menu", "hall", "api"), (everywhere, "fire drill", None, "cli")]
    assert [m["id"] for m in queries.markers(reader, "lobby", T0 + 1700, T0 + 2000)["markers"]] == [everywhere]


@pytest.mark.parametrize(("label", "camera", "t", "source"), [
    ("", None, None, "cli"), ("x" * 201, None, None, "cli"), ("line\nbreak", None, None, "cli"),
    ("ok", "", None, "cli"), ("ok", None, float("nan"), "cli"), ("ok", None, -1.0, "cli"), ("ok", None, None, "sms"),
    (7, None, None, "cli"), ("ok", 3, None, "cli"), ("ok", "the lobby", None, "cli"), ("ok", "x" * 65, None, "cli"),
])
def test_bad_markers_are_one_line_errors(label, camera, t, source):
    with pytest.raises(UsageError) as error:
        markers.check_marker(label, camera, t, source)
    assert "\n" not in str(error.value)


def test_a_bad_marker_writes_nothing(store, reader):
    before = len(_all(reader, schema.markers))
    with pytest.raises(UsageError):
        markers.add_marker(store, "\x00", "lobby")
    assert len(_all(reader, schema.markers)) == before


def test_forget_removes_whole_tracks_with_their_rows_and_keeps_the_aggregates(seeded, store, reader):
    minutes_before = len(_all(reader, schema.minutes))
    removed = forget.forget(store, "lobby", (T0 + 60, T0 + 950))  # overlaps "a" (ends T0+70) and "b"
    assert removed == {"tracks": 2, "samples": seeded.samples["a"] + seeded.samples["b"],
                       "track_events": seeded.events["a"] + seeded.events["b"], "open_tracks_left": 0}
    left = {row.id for row in _all(reader, schema.tracks)}
    assert left == {seeded.tracks["c"], seeded.tracks["open"]}
    assert {row.track for row in _all(reader, schema.samples)} == left
    assert {row.track for row in _all(reader, schema.track_events)} == left
    assert len(_all(reader, schema.minutes)) == minutes_before
    assert len(_all(reader, schema.markers)) == 3
    assert forget.forget(store, track=seeded.tracks["c"])["tracks"] == 1
    assert queries.track(reader, seeded.tracks["c"]) is None


def test_forget_leaves_a_track_the_writer_still_writes(store, reader):
    now = time.time()
    with store.begin() as connection:
        live, _, _ = add_track(connection, "lobby", 77, now - 5, now - 1, ["happy"], end_reason=None)
    removed = forget.forget(store, "lobby", (now - 60, now))
    assert removed["tracks"] == 0 and removed["open_tracks_left"] == 1
    assert queries.track(reader, live) is not None


def test_forget_needs_a_range_or_a_track(store):
    with pytest.raises(UsageError):
        forget.forget(store, "lobby")
    with pytest.raises(UsageError):
        forget.forget(store, "lobby", (T0 + 10, T0))


@pytest.fixture
def empty_reader(tmp_path):
    """An empty history (parameter checks come before any SQL, on either engine)."""
    url = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    HistoryStore(url).close()
    handle = HistoryReader(url)
    yield handle
    handle.close()


@pytest.mark.parametrize(("call", "message"), [
    (lambda r: queries.summary(r, None, T0 + 10, T0), "before"),
    (lambda r: queries.summary(r, None, T0, T0 + 600, bucket_seconds=90), "whole number of minutes"),
    (lambda r: queries.summary(r, None, T0, T0 + 30 * 86400, bucket_seconds=60), "buckets"),
    (lambda r: queries.tracks(r, None, T0, T0 + 60, limit=0), "limit"),
    (lambda r: queries.events(r, None, T0, T0 + 60, limit=1001), "limit"),
    (lambda r: queries.markers(r, None, float("inf"), None), "finite"),
])
def test_bad_query_parameters_are_one_line_usage_errors(empty_reader, call, message):
    with pytest.raises(UsageError, match=message) as error:
        call(empty_reader)
    assert "\n" not in str(error.value)


def test_csv_export_names_model_time_zone_and_valence(seeded, reader, tmp_path):
    out = tmp_path / "samples.csv"
    written = export.export(reader, out, "csv", "samples", "lobby", T0, T0 + HOUR)
    assert written == seeded.samples["a"] + seeded.samples["b"] + seeded.samples["open"]
    lines = out.read_text().splitlines()
    header = {line[2:].split(": ", 1)[0]: line[2:].split(": ", 1)[1] for line in lines if line.startswith("# ")}
    assert header["model"] == "fer-test"
    assert header["time zone"].startswith("UTC")
    assert header["valence"] == VALENCE_FORMULA
    rows = list(csv.DictReader(line for line in lines if not line.startswith("#")))
    assert len(rows) == written and {row["camera"] for row in rows} == {"lobby"}
    assert rows[0]["time"].endswith("Z") and float(rows[0]["t"]) == T0 + 10
    assert float(rows[0]["happy"]) == pytest.approx(0.9) and rows[0]["emotion"] == "happy"
    assert list(rows[0])[-7:] == ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]


def test_parquet_export_of_minutes_keeps_the_same_facts(reader, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "minutes.parquet"
    assert export.export(reader, out, "parquet", "minutes", None, T0, T0 + HOUR) == 21
    table = pq.read_table(out)
    meta = {key.decode(): value.decode() for key, value in table.schema.metadata.items()}
    assert meta["valence"] == VALENCE_FORMULA and meta["model"] == "fer-test" and meta["time zone"].startswith("UTC")
    rows = table.to_pylist()
    gap = next(row for row in rows if row["camera"] == "lobby" and row["start"] == T0 + 600)
    assert gap["coverage"] == 0.0 and gap["valence"] is None and gap["frames_missed"] == 60
    first = next(row for row in rows if row["camera"] == "lobby" and row["start"] == T0)
    assert first["seconds_happy"] == 40.0 and first["seconds_sad"] == 20.0 and first["time"].endswith("Z")
    assert rows[0]["camera"] == "hall" and rows[0]["seconds_angry"] == 60.0  # by time, then camera


def test_parquet_without_pyarrow_is_one_clear_line(reader, tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "pyarrow", None)  # as on an install without the extra
    with pytest.raises(UsageError, match="pyarrow") as error:
        export.export(reader, tmp_path / "x.parquet", "parquet", "samples", None, T0, T0 + HOUR)
    assert "\n" not in str(error.value)
    assert not list(tmp_path.glob("*x.parquet*"))


def test_the_reader_cannot_write(reader):
    with pytest.raises(sa.exc.SQLAlchemyError), reader.connect() as connection:
        connection.execute(sa.insert(schema.markers).values(t=T0, label="x", source="cli"))
        connection.commit()


def test_summary_is_json_ready(reader):
    result = queries.summary(reader, None, T0, T0 + HOUR, 300)
    assert json.loads(json.dumps(result)) == result


def test_the_summary_of_what_the_writer_wrote(history_url):
    """The writer's own rows (tracked results at 10 fps, 5 s of them lost on the bus) read back by the queries."""
    from support.history import T0 as W0
    from support.history import FakeClock, make_writer, tracked_result

    clock = FakeClock()
    writer = make_writer(history_url, clock)
    results = []
    for seq in range(1200):
        t = W0 + seq / 10
        faces = [(1, "happy" if seq < 600 else "sad")] if seq < 900 else []
        if not 1000 <= seq < 1050:
            results.append(tracked_result(seq, t, faces, ended=(1,) if seq == 900 else ()))
    for index in range(0, len(results), 100):
        clock.now = results[index:index + 100][-1].captured_at
        writer.handle(results[index:index + 100])
        writer.flush()
    writer.close()
    with HistoryReader(history_url) as reader:
        buckets = queries.summary(reader, "cam0", W0, W0 + 120, 60)["cameras"]["cam0"]
        assert buckets[0]["face_seconds"] == {"happy": pytest.approx(60.0, abs=0.2)}
        assert buckets[0]["coverage"] == 1.0 and buckets[0]["faces"] == 1
        assert buckets[0]["valence"] == pytest.approx(valence(scores_for("happy", 0.94)), abs=0.01)
        assert buckets[1]["face_seconds"] == {"sad": pytest.approx(30.0, abs=0.2)}
        assert buckets[1]["coverage"] == pytest.approx(550 / 600, abs=0.01)
        listed = queries.tracks(reader, "cam0", W0, W0 + 120)["tracks"]
        assert [(t["track_id"], t["end_reason"], t["duration"]) for t in listed] == [(1, "left", pytest.approx(89.9))]
        timeline = queries.track(reader, listed[0]["id"])
        assert [e["kind"] for e in timeline["events"]] == ["appeared", "changed", "disappeared"]
        assert 90 * 3 <= len(timeline["samples"]) <= 90 * 4  # 10 fps thinned to at most 4 a second
