"""BlazeFace's still scenes: after a frame where every known face held still, the next keeps their boxes and
keypoints without a model call; never two frames running, and the carried faces are the ones the detector
would have found."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from emotiond.capture import synthetic
from emotiond.core.settings import Settings
from emotiond.workers.blazeface import BlazeFaceDetector
from emotiond.workers.finder import FrameFinder, open_finder
from emotiond.workers.tracking import iou

FRAMES = 90


@pytest.fixture(scope="module")
def detector(default_model) -> BlazeFaceDetector:
    settings = Settings()
    return BlazeFaceDetector(settings.detection.model_copy(update={"backend": "blazeface"}), settings.models.dir)


@pytest.fixture(scope="module")
def four_faces() -> list[np.ndarray]:
    spec = synthetic.SceneSpec(faces=4, frames=FRAMES)
    return [synthetic.render(spec, i)[0] for i in range(FRAMES)]


def run(detector: BlazeFaceDetector, frames: list[np.ndarray], reuse: bool) -> list[tuple]:
    settings = Settings()
    settings = settings.model_copy(update={"tracking": settings.tracking.model_copy(update={"reuse_stable": reuse})})
    finder = open_finder(detector, settings, ("happy", "sad", "neutral"))
    assert isinstance(finder, FrameFinder)
    out = []
    for seq, pixels in enumerate(frames):
        found, track_ids, _ended, kind = finder.find(seq, pixels, cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY))
        out.append((found, track_ids, kind))
    return out


def test_still_faces_are_carried_one_frame_at_a_time_and_match_the_detector(detector, four_faces):
    steps = run(detector, four_faces, reuse=True)
    kinds = [kind for _found, _ids, kind in steps]
    carried = [seq for seq, kind in enumerate(kinds) if kind == "tracked"]
    assert len(carried) >= FRAMES // 10, kinds  # the synthetic faces drift slowly: many frames qualify
    assert all(kinds[seq - 1] == "full" for seq in carried), "a frame was carried twice running"
    for seq in carried:
        found, track_ids, _ = steps[seq]
        before, before_ids, _ = steps[seq - 1]
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


def test_without_reuse_every_frame_is_detected_whole(detector, four_faces):
    steps = run(detector, four_faces[:30], reuse=False)
    assert {kind for _found, _ids, kind in steps} == {"full"}
