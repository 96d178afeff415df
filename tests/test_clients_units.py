"""The clients' pure parts, tested alone: drawing, the (camera, seq) join, messages, gaps, log files."""

from __future__ import annotations

import csv
import json
import random
import time
from pathlib import Path

import numpy as np
import pytest

from emotiond.clients import records
from emotiond.clients.gaps import Gap, GapTracker, Restart
from emotiond.clients.join import FrameResultJoiner, SeqCounter
from emotiond.clients.log.files import RotatingLog, repair_tail
from emotiond.clients.log.summary import count_table, read_log, timeline_png
from emotiond.clients.messages import MessagePicker, dominant_emotion, load_messages
from emotiond.clients.overlay import EMOTION_COLORS, Hud, draw_overlay
from emotiond.clients.view.viewer import ViewerModel
from emotiond.core import protocol
from emotiond.core.bundle import FER_PLUS_LABELS
from emotiond.core.errors import UsageError

from support.clients import best_iou, crafted_result, palette_mask


def frame(camera: str, seq: int, value: int = 0) -> protocol.Frame:
    pixels = np.full((480, 640, 3), value, np.uint8)
    return protocol.Frame(protocol.FrameHeader(camera, seq, time.time(), (480, 640, 3)), pixels)


def result_with(camera: str, seq: int, faces: list[tuple[tuple[int, int, int, int], str, float]],
                size: tuple[int, int] = (640, 480)) -> protocol.Result:
    built = []
    for box, emotion, confidence in faces:
        scores = {label: (1 - confidence) / 6 for label in FER_PLUS_LABELS[:7]}
        scores[emotion] = confidence
        built.append(protocol.Face(box=box, emotion=emotion, confidence=confidence, scores=scores))
    return protocol.Result(camera, seq, time.time(), time.time(), size, tuple(built), {"total": 1.0}, "w", "m")


# ---------------------------------------------------------------- drawing

def test_draw_overlay_is_pure_and_outlines_each_face():
    image = np.full((480, 640, 3), 90, np.uint8)
    before = image.copy()
    boxes = [(100, 120, 140, 150), (400, 200, 120, 120)]
    result = result_with("cam", 1, [(boxes[0], "happy", 0.9), (boxes[1], "sad", 0.7)])
    out = draw_overlay(image, result, hud=Hud("cam", 29.5, 41.0, 3), message="hello")
    assert np.array_equal(image, before), "the input image must not change"
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.array_equal(draw_overlay(image, result, hud=Hud("cam", 29.5, 41.0, 3), message="hello"), out)
    mask = palette_mask(out)
    for box in boxes:
        assert best_iou(mask, box) > 0.95
    assert np.all(out[boxes[0][1], boxes[0][0]] == EMOTION_COLORS["happy"])
    assert np.all(out[boxes[1][1] + 5, boxes[1][0]] == EMOTION_COLORS["sad"])
    # score bars: a filled bar in the top emotion's colour right of the happy face
    right = out[boxes[0][1]:boxes[0][1] + 100, boxes[0][0] + boxes[0][2] + 4:boxes[0][0] + boxes[0][2] + 100]
    assert np.all(right == EMOTION_COLORS["happy"], axis=2).sum() > 100
    # HUD strip at the top, message strip at the bottom: dark panels replaced the grey
    assert (out[:10, :200] != 90).any() and (out[-10:, :100] != 90).any()


def test_draw_overlay_scales_boxes_to_the_image_and_accepts_grey():
    result = result_with("cam", 1, [((200, 100, 200, 200), "angry", 0.8)], size=(1280, 960))
    grey = np.zeros((480, 640), np.uint8)
    out = draw_overlay(grey, result)
    assert out.shape == (480, 640, 3)
    assert best_iou(palette_mask(out), (100, 50, 100, 100)) > 0.95


def test_draw_overlay_without_result_draws_only_the_banner():
    image = np.zeros((240, 320, 3), np.uint8)
    out = draw_overlay(image, None, banner="waiting for daemon")
    assert not palette_mask(out).any()
    assert (out[100:140, 40:280] > 200).any(), "white banner text in the middle"


# ---------------------------------------------------------------- join by (camera, seq)

def test_joiner_pairs_only_matching_camera_and_seq_in_any_order():
    joiner = FrameResultJoiner(capacity=4)
    assert joiner.add_frame(frame("a", 1)) is None
    assert joiner.add_result(crafted_result("a", 2)) is None  # its frame is not here yet
    assert joiner.add_result(crafted_result("b", 1)) is None  # same seq, other camera
    pair = joiner.add_result(crafted_result("a", 1))
    assert pair is not None and pair.frame.header.seq == 1 and pair.result.camera == "a"
    pair = joiner.add_frame(frame("a", 2))
    assert pair is not None and (pair.frame.header.camera, pair.frame.header.seq) == ("a", 2) == (
        pair.result.camera, pair.result.seq)
    assert joiner.pending() == (0, 1)


def test_joiner_evicts_old_halves_instead_of_pairing_them_wrongly():
    joiner = FrameResultJoiner(capacity=3)
    for seq in range(10):
        assert joiner.add_frame(frame("a", seq)) is None
    assert joiner.evicted_frames == 7
    assert joiner.add_result(crafted_result("a", 0)) is None  # frame 0 was evicted: no pair at all
    assert joiner.add_result(crafted_result("a", 9)).frame.header.seq == 9


def test_seq_counter_counts_skips_refuses_stale_and_follows_restarts():
    counter = SeqCounter(restart_window=10)
    assert counter.see("a", 5) and counter.see("a", 6) and counter.see("a", 9)
    assert counter.drops == 2
    assert not counter.see("a", 8), "an older frame must not replace a newer one on screen"
    assert counter.see("a", 100) and counter.drops == 92
    assert counter.see("a", 0) and counter.restarts == 1  # daemon restarted
    assert counter.see("a", 1) and counter.drops == 92


def test_viewer_model_never_shows_a_box_on_another_frame():
    model = ViewerModel(MessagePicker({"happy": ["yay"]}, random.Random(1)), waiting_after=5.0)
    now = time.monotonic()
    # frame 1 is dark, frame 2 bright; the result for 2 arrives while frame 1 is the only frame
    assert not model.feed(frame("cam", 1, value=10), now)
    assert not model.feed(result_with("cam", 2, [((50, 50, 100, 100), "happy", 0.9)]), now)
    assert model.current is None
    assert model.feed(frame("cam", 2, value=200), now)
    assert model.current.frame.header.seq == model.current.result.seq == 2
    shown = model.compose(now)
    assert shown[300, 300, 0] == 200 and best_iou(palette_mask(shown), (50, 50, 100, 100)) > 0.95
    # a late result for frame 1 pairs with frame 1 but is older than what is on screen: ignored
    assert not model.feed(result_with("cam", 1, [((300, 300, 50, 50), "sad", 0.9)]), now)
    assert model.current.result.seq == 2
    # frames of another camera never replace the chosen one
    assert not model.feed(frame("other", 3), now) and not model.feed(crafted_result("other", 3), now)
    assert model.camera == "cam"


def test_viewer_model_waits_after_silence_and_accepts_a_restarted_daemon():
    model = ViewerModel(MessagePicker({}), waiting_after=1.0)
    start = time.monotonic()
    assert model.waiting(start)
    model.feed(frame("cam", 500), start)
    assert model.feed(crafted_result("cam", 500), start)
    assert not model.waiting(start + 0.5)
    assert model.waiting(start + 2.0)  # silence: "waiting for daemon"
    model.feed(frame("cam", 0), start + 3.0)  # the restarted daemon counts from 0
    assert model.feed(crafted_result("cam", 0), start + 3.0)
    assert not model.waiting(start + 3.1)


# ---------------------------------------------------------------- messages

def test_shipped_messages_cover_every_label_with_several_lines():
    messages = load_messages()
    assert set(messages) >= set(FER_PLUS_LABELS)
    assert all(len(set(messages[label])) >= 3 for label in FER_PLUS_LABELS)


def test_message_changes_only_when_the_dominant_emotion_changes():
    picker = MessagePicker({"happy": [f"h{i}" for i in range(20)], "sad": [f"s{i}" for i in range(20)]},
                           random.Random(7))
    first = picker.update("happy")
    assert all(picker.update("happy") == first for _ in range(50))
    assert picker.update(None) == ""
    assert picker.update("happy") == first, "a frame without faces does not reshuffle"
    assert picker.update("sad").startswith("s")
    seen = {picker.update(e) for e in ["happy", "sad"] * 30}
    assert len(seen) > 4, "a new line is drawn at each change"


def test_dominant_emotion_is_the_most_confident_face():
    result = result_with("c", 0, [((0, 0, 10, 10), "sad", 0.6), ((0, 0, 50, 50), "happy", 0.9)])
    assert dominant_emotion(result.faces) == "happy"
    assert dominant_emotion(()) is None
    tracked = protocol.Face((0, 0, 9, 9), "sad", 0.9, {"sad": 0.9}, smoothed_emotion="happy")
    assert dominant_emotion((tracked,)) == "happy"


def test_broken_messages_file_is_a_usage_error(tmp_path):
    bad = tmp_path / "m.json"
    bad.write_text('{"happy": "not a list"}')
    with pytest.raises(UsageError):
        load_messages(bad)


# ---------------------------------------------------------------- gaps

def test_gap_tracker_tolerates_reordering_and_reports_real_holes():
    tracker = GapTracker(reorder_window=8, max_wait=100.0)
    events = []
    for seq in [0, 2, 1, 3, 5, 4, 6, 10, 11, 12]:
        events += tracker.see("a", seq, 0.0, 0.0)
    assert events == [] and tracker.pending() == 3  # 7..9 may still arrive
    for seq in range(13, 18):
        events += tracker.see("a", seq, 0.0, 0.0)
    assert [(e.first_seq, e.last_seq, e.missed) for e in events] == [(7, 9, 3)]


def test_gap_tracker_expires_holes_by_time_and_splits_ranges():
    tracker = GapTracker(reorder_window=1000, max_wait=2.0)
    tracker.see("a", 0, 0.0, 0.0)
    tracker.see("a", 10, 0.0, 0.0)
    tracker.see("a", 5, 1.0, 0.0)  # fills the middle of 1..9
    assert tracker.expire(1.5) == []
    gaps = tracker.expire(2.5)
    assert sorted((g.first_seq, g.last_seq) for g in gaps) == [(1, 4), (6, 9)]


def test_gap_tracker_detects_restarts_and_reports_open_holes_on_close():
    tracker = GapTracker(reorder_window=64, max_wait=100.0)
    for seq in (0, 1, 50, 100):
        tracker.see("a", seq, 0.0, 0.0)
    events = tracker.see("a", 0, 0.0, 0.0)  # far below 100: the daemon restarted
    assert [type(e) for e in events] == [Gap, Gap, Restart]
    assert events[-1].from_seq == 100 and events[-1].to_seq == 0
    tracker.see("a", 3, 0.0, 0.0)
    tracker.see("b", 7, 0.0, 0.0)
    assert [(g.camera, g.first_seq, g.last_seq) for g in tracker.close()] == [("a", 1, 2)]


# ---------------------------------------------------------------- records and files

def test_json_lines_are_the_event_schema_and_csv_has_a_row_per_face():
    scores = {"happy": 0.9, "sad": 0.1}
    result = protocol.Result("cam", 4, 1763700000.123, 1763700000.14, (640, 480),
                             (protocol.Face((1, 2, 3, 4), "happy", 0.9, scores),
                              protocol.Face((5, 6, 7, 8), "sad", 0.8, {"happy": 0.2, "sad": 0.8})),
                             {"total": 17.2, "detect": 12.0}, "w1", "fer-mini-xception")
    # the event format documented in the README (and docs/protocol.md), written out key by key
    assert json.loads(records.json_line(result)) == {
        "v": 1, "camera": "cam", "seq": 4, "captured_at": 1763700000.123, "published_at": 1763700000.14,
        "frame_size": [640, 480],
        "faces": [{"box": [1, 2, 3, 4], "emotion": "happy", "confidence": 0.9, "scores": {"happy": 0.9, "sad": 0.1}},
                  {"box": [5, 6, 7, 8], "emotion": "sad", "confidence": 0.8, "scores": {"happy": 0.2, "sad": 0.8}}],
        "latency_ms": {"total": 17.2, "detect": 12.0}, "worker": "w1", "model": "fer-mini-xception"}
    tracked = protocol.Result("cam", 5, 1.0, 2.0, (640, 480), (protocol.Face(
        (1, 2, 3, 4), "sad", 0.7, scores, track_id=500, smoothed_emotion="happy", smoothed_confidence=0.6),), {},
        "w1", "m", {"ended_tracks": [3]})
    line = json.loads(records.json_line(tracked))
    assert line["ended_tracks"] == [3]
    assert line["faces"][0] == {"box": [1, 2, 3, 4], "emotion": "sad", "confidence": 0.7, "scores": scores,
                                "track_id": 500, "smoothed_emotion": "happy", "smoothed_confidence": 0.6}
    result = result_with("cam", 4, [((1, 2, 3, 4), "happy", 0.9), ((5, 6, 7, 8), "sad", 0.8)])
    assert json.loads(records.json_line(Gap("cam", 3, 5, 1.0)))["missed"] == 3
    text = records.csv_text(records.csv_rows(result), header=True)
    rows = list(csv.DictReader(text.splitlines()))
    assert [r["record"] for r in rows] == ["face", "face"]
    assert rows[1]["emotion"] == "sad" and rows[1]["x"] == "5" and float(rows[1]["score_sad"]) == 0.8
    empty = result_with("cam", 5, [])
    assert [r["record"] for r in records.csv_rows(empty)] == ["frame"]
    assert list(records.csv_rows(empty, faces_only=True)) == []


def test_rotating_log_rotates_by_size_and_by_day_in_whole_lines(tmp_path):
    clock = [1_700_000_000.0]  # 2023-11-14 UTC
    rotated = []
    log = RotatingLog(tmp_path, "jsonl", rotate_bytes=100, fsync_seconds=0, clock=lambda: clock[0],
                      on_rotate=rotated.append)
    line = json.dumps({"x": "a" * 30}) + "\n"  # 41 bytes
    for _ in range(5):
        log.write(line)
    clock[0] += 86_400
    log.write(line)
    log.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["emotiond-2023-11-14.000.jsonl", "emotiond-2023-11-14.001.jsonl",
                     "emotiond-2023-11-14.002.jsonl", "emotiond-2023-11-15.000.jsonl"]
    assert len(rotated) == 3
    for path in tmp_path.iterdir():
        assert path.stat().st_size <= 100 and path.read_text().endswith("\n")
    assert sum(len(p.read_text().splitlines()) for p in tmp_path.iterdir()) == 6


def test_reopening_repairs_a_torn_last_line_and_keeps_the_csv_header(tmp_path):
    path = tmp_path / "emotiond-2023-11-14.000.csv"
    header = records.csv_header()
    path.write_text(header + "face,cam,1\nface,cam,2,tor")
    assert repair_tail(path) == len("face,cam,2,tor")
    path.write_text(path.read_text() + "face,cam,2,tor")
    log = RotatingLog(tmp_path, "csv", rotate_bytes=10_000, header=header, clock=lambda: 1_700_000_000.0)
    log.write("face,cam,3\n")
    log.close()
    assert path.read_text() == header + "face,cam,1\nface,cam,3\n"


def test_summary_counts_and_draws_a_timeline(tmp_path):
    folder = tmp_path / "log"
    folder.mkdir()
    lines = [records.json_line(result_with("a", i, [((0, 0, 9, 9), "happy" if i % 4 else "sad", 0.9)]))
             for i in range(40)]
    lines.append(records.json_line(Gap("a", 40, 44, 1.0)))
    (folder / "emotiond-2023-11-14.000.jsonl").write_text("".join(lines) + '{"torn')
    rows = records.csv_rows(result_with("b", 0, [((0, 0, 9, 9), "angry", 0.9)]))
    (folder / "emotiond-2023-11-14.000.csv").write_text(records.csv_text(rows, header=True))
    contents = read_log(folder)
    assert contents.bad_lines == 1 and contents.missed["a"] == 5
    table = count_table(contents)
    assert "happy" in table and " 30 " in table and "sad" in table and "angry" in table
    png = timeline_png(contents, tmp_path / "t.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_summary_of_an_empty_folder_has_no_faces(tmp_path: Path):
    contents = read_log(tmp_path)
    assert contents.files == 0
    assert timeline_png(contents, tmp_path / "t.png").is_file()
