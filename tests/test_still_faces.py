"""BlazeFace's still scenes: after a frame where every known face held still, the next keeps their boxes and
keypoints without a model call; never two frames running, and the carried faces are the ones the detector
would have found. A face that jumps in the frame that would be carried is not carried: that frame costs a model
call and the face is found where it went.

Model calls are counted where the detector invokes its interpreter (every batch it runs), so a carried frame that
quietly ran the model would be caught, not just one labelled differently."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from emotiond.capture import synthetic
from emotiond.core.settings import Settings
from emotiond.workers.blazeface import BlazeFaceDetector
from emotiond.workers.finder import STABLE_IOU, FrameFinder, open_finder
from emotiond.workers.tracking import iou

pytestmark = pytest.mark.model  # runs a neural network in the test process: make check leaves it out

FRAMES = 90
SPEC = synthetic.SceneSpec(faces=4, frames=FRAMES)
JUMPER = 0  # the face that jumps in the negative case: the top-left one, alone in its quarter of the frame


class ModelCalls:
    """The detector's interpreter, counting its invocations: every call still runs the real model."""

    def __init__(self, runner):
        self._runner = runner
        self.count = 0

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        self.count += 1
        return self._runner.run(batch)

    def __getattr__(self, name: str):
        return getattr(self._runner, name)


@pytest.fixture(scope="module")
def detector(default_model) -> BlazeFaceDetector:
    settings = Settings()
    found = BlazeFaceDetector(settings.detection.model_copy(update={"backend": "blazeface"}), settings.models.dir)
    found._runner = ModelCalls(found._runner)  # the one place the detector runs its model
    return found


@pytest.fixture(scope="module")
def four_faces() -> list[np.ndarray]:
    return [synthetic.render(SPEC, i)[0] for i in range(FRAMES)]


def run(detector: BlazeFaceDetector, frames: list[np.ndarray], reuse: bool) -> list[tuple]:
    """(faces, track ids, how they were found, model calls) per frame."""
    settings = Settings()
    settings = settings.model_copy(update={"tracking": settings.tracking.model_copy(update={"reuse_stable": reuse})})
    finder = open_finder(detector, settings, ("happy", "sad", "neutral"))
    assert isinstance(finder, FrameFinder)
    calls = detector._runner
    out = []
    for seq, pixels in enumerate(frames):
        before = calls.count
        found, track_ids, _ended, kind = finder.find(seq, pixels, cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY))
        out.append((found, track_ids, kind, calls.count - before))
    return out


@pytest.fixture(scope="module")
def carried_run(detector, four_faces) -> list[tuple]:
    return run(detector, four_faces, reuse=True)


def test_still_faces_are_carried_one_frame_at_a_time_and_match_the_detector(detector, four_faces, carried_run):
    steps = carried_run
    kinds = [kind for _found, _ids, kind, _calls in steps]
    carried = [seq for seq, kind in enumerate(kinds) if kind == "tracked"]
    assert len(carried) >= FRAMES // 10, kinds  # the synthetic faces drift slowly: many frames qualify
    assert all(kinds[seq - 1] == "full" for seq in carried), "a frame was carried twice running"
    calls = [count for _found, _ids, _kind, count in steps]
    assert all(calls[seq] == 0 for seq in carried), [(seq, calls[seq]) for seq in carried if calls[seq]]
    assert all(calls[seq] >= 1 for seq in range(FRAMES) if seq not in carried), "positive control: calls counted"
    for seq in carried:
        found, track_ids, _, _ = steps[seq]
        before, before_ids, _, _ = steps[seq - 1]
        assert sorted(track_ids) == sorted(before_ids) and found.landmarks is not None, seq
        for index, track_id in enumerate(track_ids):
            earlier = before_ids.index(track_id)
            assert np.array_equal(found.boxes[index], before.boxes[earlier]), (seq, track_id)
            assert np.array_equal(found.landmarks[index], before.landmarks[earlier]), (seq, track_id)
        # what the model finds on that frame: the same faces, where the carried boxes are
        fresh = detector.detect(four_faces[seq], cv2.cvtColor(four_faces[seq], cv2.COLOR_BGR2GRAY))
        assert len(fresh) == len(found) == 4, seq
        for box in found.boxes:
            assert max(iou(box, other) for other in fresh.boxes) >= 0.8, (seq, box, fresh.boxes)


def jumped(frames: list[np.ndarray], seq: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Frame ``seq`` with the top-left face where it is a few seconds later (its quarter of the frame taken from
    then; the other three faces stay put), and that face's true box there: the most distant spot of its path that
    still overlaps where it was, so the jump is a short one."""
    here = synthetic.render(SPEC, seq)[1][JUMPER]
    boxes = ((index, synthetic.render(SPEC, index)[1][JUMPER]) for index in range(seq + 1, seq + 4 * FRAMES))
    source, truth = next(((i, box) for i, box in boxes if 0.2 <= iou(box, here) < STABLE_IOU / 2), (None, here))
    assert source is not None, "the face never moves that far"
    frame = frames[seq].copy()
    half_h, half_w = SPEC.height // 2, SPEC.width // 2
    frame[:half_h, :half_w] = synthetic.render(SPEC, source)[0][:half_h, :half_w]
    return frame, truth


def test_a_face_that_jumps_is_not_carried_and_costs_a_model_call(detector, four_faces, carried_run):
    seq = next(s for s, (_f, _i, kind, _c) in enumerate(carried_run) if kind == "tracked" and s >= 2)
    frame, truth = jumped(four_faces, seq)
    old_box = next(b for b in carried_run[seq - 1][0].boxes if iou(b, synthetic.render(SPEC, seq)[1][JUMPER]) > 0.5)
    assert iou(old_box, truth) < STABLE_IOU, "the jump is within what counts as still"
    print(f"frame {seq}: face {JUMPER} jumps from {old_box.tolist()} to {truth} (overlap {iou(old_box, truth):.2f})")
    steps = run(detector, [*four_faces[:seq], frame], reuse=True)
    assert [kind for _f, _i, kind, _c in steps[:seq]] == [kind for _f, _i, kind, _c in carried_run[:seq]]
    found, _ids, kind, calls = steps[-1]
    # the same frame without the jump was carried (carried_run); with it, the whole frame is detected
    assert kind == "full" and calls >= 1, (kind, calls)
    assert len(found) == 4, found.boxes
    assert max(iou(box, truth) for box in found.boxes) >= 0.6, (truth, found.boxes)
    assert max(iou(box, old_box) for box in found.boxes) < STABLE_IOU, "the old box was kept"


def test_without_reuse_every_frame_is_detected_whole(detector, four_faces):
    steps = run(detector, four_faces[:30], reuse=False)
    assert {kind for _found, _ids, kind, _calls in steps} == {"full"}
    assert all(calls >= 1 for _found, _ids, _kind, calls in steps)
