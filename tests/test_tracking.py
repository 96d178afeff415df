"""Face tracks: stable ids, bounded time to find a new face, smoothing with hysteresis, and change events."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from emotiond.capture import synthetic
from emotiond.core.protocol import Face, Result
from emotiond.core.settings import DetectionSettings, TrackingSettings
from emotiond.workers.finder import RegionFinder
from emotiond.workers.haar import HaarFaceDetector
from emotiond.workers.tracking import CameraTracker, iou

LABELS = ("happy", "sad", "neutral")


def boxes(*items: tuple[int, int, int, int]) -> np.ndarray:
    return np.array(items, np.int32).reshape(-1, 4)


def test_ids_are_stable_and_new_faces_get_new_ids():
    tracker = CameraTracker(TrackingSettings(), LABELS)
    first, _ = tracker.associate(0, boxes((100, 100, 80, 80)))
    moved, _ = tracker.associate(1, boxes((106, 103, 82, 80)))
    assert moved == first
    both, _ = tracker.associate(2, boxes((400, 90, 70, 70), (110, 105, 80, 80)))
    assert both[1] == first[0] and both[0] not in first


def scene_with_late_face(appears_at: int, frames: int) -> list[tuple[np.ndarray, list]]:
    spec = synthetic.SceneSpec(faces=1, frames=frames)
    background = synthetic._background(spec.width, spec.height)
    return [synthetic.render(spec, i) if i >= appears_at else (background.copy(), []) for i in range(frames)]


def test_iou_known_values():
    """Every recall check in the suite rests on iou: known geometry, both argument types, both orders."""
    cases = [
        ((10, 20, 30, 40), (10, 20, 30, 40), 1.0),  # identical
        ((0, 0, 10, 10), (20, 20, 10, 10), 0.0),  # apart
        ((0, 0, 10, 10), (10, 0, 10, 10), 0.0),  # sharing an edge only
        ((0, 0, 10, 10), (5, 0, 10, 10), 50 / 150),  # half of each overlaps
        ((0, 0, 10, 10), (5, 5, 10, 10), 25 / 175),  # a corner quarter
        ((0, 0, 10, 10), (0, 0, 5, 5), 25 / 100),  # one inside the other
        ((0, 0, 0, 0), (0, 0, 0, 0), 0.0),  # empty boxes
    ]
    for a, b, expected in cases:
        assert iou(a, b) == pytest.approx(expected), (a, b)
        assert iou(b, a) == pytest.approx(expected), (b, a)
        assert iou(np.array(a, np.int32), np.array(b, np.float32)) == pytest.approx(expected), (a, b)


def test_a_new_face_is_found_within_two_scan_intervals_and_then_followed():
    """Files take a background scan's boxes exactly one interval after it started, so a face that appears just
    after a scan began is found by the next scan: within twice the interval, whatever frame it appears at."""
    settings = TrackingSettings(full_scan_interval=4)
    delays = {}
    for appears_at in range(4, 4 + settings.full_scan_interval):  # every phase of the scan cycle
        finder = RegionFinder(HaarFaceDetector(DetectionSettings(), threads=2), settings, LABELS)
        kinds, first_seen, ids = [], None, set()
        for seq, (frame, truth) in enumerate(scene_with_late_face(appears_at, frames=24)):
            found, track_ids, _, kind = finder.find(seq, frame, cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
            kinds.append(kind)
            hit = [tid for box, tid in zip(found.boxes, track_ids, strict=False)
                   if truth and iou(box, truth[0]) >= 0.4]
            if hit and first_seen is None:
                first_seen = seq
            if first_seen is not None:
                assert hit, f"face lost at frame {seq}"
                ids.update(hit)
        assert first_seen is not None, f"a face appearing at frame {appears_at} was never found"
        delays[appears_at] = first_seen - appears_at
        assert len(ids) == 1  # one stable track
        assert kinds[0] == "full" and kinds.count("full") <= 3  # scans run in the background after the first
    print(f"frames from appearing to found, by the frame the face appears at: {delays}")
    assert all(delay < 2 * settings.full_scan_interval for delay in delays.values()), delays


def test_lost_tracks_end_after_max_missed_frames():
    tracker = CameraTracker(TrackingSettings(max_missed=2), LABELS)
    (track,), _ = tracker.associate(0, boxes((10, 10, 50, 50)))
    ended_per_frame = [tracker.associate(seq, boxes())[1] for seq in range(1, 5)]
    assert ended_per_frame == [[], [], [track], []]
    assert tracker.tracks == []


def test_smoothing_changes_label_only_past_the_hysteresis():
    tracker = CameraTracker(TrackingSettings(ema_alpha=0.5, hysteresis=0.2), LABELS)
    (track,), _ = tracker.associate(0, boxes((10, 10, 50, 50)))
    label, _ = tracker.smooth(track, np.array([0.8, 0.1, 0.1]))
    assert label == "happy"
    label, smoothed = tracker.smooth(track, np.array([0.3, 0.6, 0.1]))  # one noisy frame: no flip
    assert label == "happy" and np.isclose(smoothed[1], 0.35)
    for _ in range(3):
        label, _ = tracker.smooth(track, np.array([0.1, 0.8, 0.1]))
    assert label == "sad"


def test_change_detector_emits_appear_change_disappear():
    from emotiond.clients.changes import ChangeDetector

    def result(seq, faces, ended=()):
        return Result("cam0", seq, 1.0, 2.0, (640, 480), tuple(faces), {}, "w1", "m",
                      extra={"ended_tracks": list(ended)})

    def face(track, emotion):
        return Face((1, 2, 3, 4), emotion, 0.9, {}, track_id=track, smoothed_emotion=emotion)

    detector = ChangeDetector()
    stream = [result(0, [face(7, "happy")]), result(1, [face(7, "happy")]), result(2, [face(7, "sad")]),
              result(3, [], ended=[7])]
    events = [e for r in stream for e in detector.feed(r)]
    assert [(e["event"], e["track_id"], e["emotion"]) for e in events] == [
        ("appeared", 7, "happy"), ("changed", 7, "sad"), ("disappeared", 7, "sad")]
    assert events[1]["previous"] == "happy"


def test_tracks_and_change_events_end_to_end(start_daemon, events, tmp_path, default_model):
    """A face present for 20 frames, then gone: one stable track, one appear and one disappear event."""
    folder = tmp_path / "appear"
    folder.mkdir()
    spec = synthetic.SceneSpec(faces=1, frames=40)
    for index in range(30):
        frame, _ = synthetic.render(spec, index)
        if index >= 20:
            frame = synthetic._background(spec.width, spec.height).copy()
        cv2.imwrite(str(folder / f"{index:03d}.png"), frame)
    daemon = start_daemon("--source", f"door={folder}", workers=1)
    results_reader = events(daemon, "--until-eos", "--timeout", "90")
    changes_reader = events(daemon, "--changes", "--until-eos", "--timeout", "90")
    assert daemon.process.wait(90) == 0, daemon.log()[-2000:]
    results = sorted(results_reader.wait(30), key=lambda r: r["seq"])
    assert len(results) == 30
    track_ids = {f["track_id"] for r in results[:20] for f in r["faces"]}
    assert len(track_ids) == 1
    assert sum(1 for r in results[:20] if r["faces"]) >= 19
    assert all(not r["faces"] for r in results[20:])
    assert all(f["smoothed_emotion"] == "happy" for r in results[5:20] for f in r["faces"])
    changes = changes_reader.wait(30)
    kinds = [(c["event"], c["track_id"]) for c in changes]
    (track,) = track_ids
    assert kinds[0] == ("appeared", track)
    assert ("disappeared", track) in kinds
    assert next(c["seq"] for c in changes if c["event"] == "disappeared") <= 20 + TrackingSettings().max_missed + 1
