"""Face redaction: the pure function for each mode, the hold on a lost face's last box, and the pipeline's own
image of a frame (what the worker publishes and analyze, the Python API and the upload draw on), which hides every
face the detector found and exists only for frames whose detection finished."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from emotiond.capture import synthetic
from emotiond.workers.held_faces import HeldFaces
from emotiond.workers.redaction import grown_boxes, redact

NOT_FOUND = 0.5  # normalised correlation under which a patch of the original counts as gone


def noise(height: int = 240, width: int = 320, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8)


def best_match(image: np.ndarray, patch: np.ndarray) -> float:
    return float(cv2.matchTemplate(image, patch, cv2.TM_CCOEFF_NORMED).max())


@pytest.mark.parametrize("mode", ["solid", "blur", "mosaic"])
def test_each_mode_hides_the_grown_box_and_nothing_else(mode):
    frame = noise()
    before = frame.copy()
    shown = redact(frame, np.array([[100, 80, 60, 60]]), mode, 1.3)
    assert np.array_equal(frame, before), "the input is never changed (the classifier's crops come from it)"
    x0, y0, x1, y1 = grown_boxes(np.array([[100, 80, 60, 60]]), 1.3, 320, 240)[0]
    assert (x0, y0, x1, y1) == (91, 71, 139, 119) or (x1 - x0, y1 - y0) == (78, 78)
    outside = np.ones(frame.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(shown[outside], frame[outside])
    if mode == "solid":
        assert not shown[y0:y1, x0:x1].any()
    # a patch of the face, even one from the box's edge, is found nowhere in the redacted image
    for top, left in ((y0, x0), (y0 + 20, x0 + 20), (y1 - 16, x1 - 16)):
        patch = frame[top:top + 16, left:left + 16]
        assert best_match(frame, patch) > 0.99  # positive control
        assert best_match(shown, patch) < NOT_FOUND, (mode, top, left)


def test_show_returns_the_frame_itself():
    frame = noise()
    assert redact(frame, np.array([[10, 10, 50, 50]]), "show") is frame
    assert redact(frame, np.zeros((0, 4)), "solid") is frame


def test_boxes_grow_about_their_centre_and_are_clipped_to_the_frame():
    grown = grown_boxes(np.array([[100, 100, 100, 100], [-50, -50, 60, 60], [500, 500, 10, 10]]), 1.3, 320, 240)
    assert grown.tolist() == [[85, 85, 215, 215], [0, 0, 19, 19]]  # the third lies wholly outside


def test_a_lost_face_stays_hidden_for_hold_frames_and_a_moving_one_takes_its_mask_along():
    held = HeldFaces(hold_frames=2)
    a, b = np.array([[10, 10, 40, 40]]), np.array([[60, 10, 40, 40]])
    assert held.update("cam", a, [7]).tolist() == a.tolist()
    assert held.update("cam", b, [7]).tolist() == b.tolist(), "track 7 moved: its old box is not held"
    empty = np.zeros((0, 4), np.int32)
    assert held.update("cam", empty, []).tolist() == b.tolist()  # missed once: held
    assert held.update("cam", empty, []).tolist() == b.tolist()  # missed twice: held
    assert held.update("cam", empty, []).tolist() == []  # past hold_frames
    assert held.update("cam", a, []).tolist() == a.tolist()  # untracked: held where it was
    assert held.update("cam", empty, []).tolist() == a.tolist()
    assert held.update("other", empty, []).tolist() == [], "cameras hold their own faces"
    held.forget("cam")
    assert held.update("cam", empty, []).tolist() == []


# ---------------------------------------------------------------- the pipeline's image of a frame

@pytest.fixture(scope="module")
def scene():
    spec = synthetic.SceneSpec(faces=2, frames=12)
    return [synthetic.render(spec, index) for index in range(spec.frames)]


def overlap(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0, min(ay + ah, by + bh) - max(ay, by))
    return w * h / float(aw * ah + bw * bh - w * h)


def haar_faces(image: np.ndarray, truth) -> int:
    """True faces Haar finds at a low threshold (2 neighbours, where the daemon asks 5): hits overlapping a true
    face box by a third or more. Hits elsewhere are false alarms (the edges of a black mask over a dark collar
    draw one now and then), not a face that got through."""
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    hits = cascade.detectMultiScale(gray, scaleFactor=1.05, minNeighbors=2, minSize=(24, 24))
    return sum(any(overlap(hit, face) >= 0.3 for face in truth) for hit in hits)


def test_the_pipeline_hides_every_face_in_the_images_it_hands_out(default_model, scene):
    from emotiond.clients.api import Analyzer

    frame, truth = scene[0]
    shown_image, shown_result = Analyzer(overrides={"privacy.faces": "show"}).result_image(frame)
    assert shown_image is frame and len(shown_result.faces) == 2
    assert haar_faces(frame, truth) == 2  # positive control: the detector used below sees these faces

    analyzer = Analyzer(overrides={"privacy.faces": "solid"})
    image, result = analyzer.result_image(frame)
    assert len(result.faces) == 2, "results are unchanged: only images are redacted"
    assert haar_faces(image, truth) == 0
    for x, y, w, h in truth:
        assert not image[y + h // 4: y + 3 * h // 4, x + w // 4: x + 3 * w // 4].any()

    video = [(index, pixels) for index, (pixels, _boxes) in enumerate(scene)]
    for (pixels, result), (original, boxes) in zip(analyzer.pipeline.process_images("clip", video), scene,
                                                   strict=True):
        assert len(result.faces) == 2 and haar_faces(original, boxes) == 2 and haar_faces(pixels, boxes) == 0


def test_a_detector_that_raises_leaves_no_image(default_model, scene):
    from emotiond.clients.api import Analyzer

    analyzer = Analyzer(overrides={"privacy.faces": "solid", "tracking.enabled": False})

    def broken(*_args, **_kwargs):
        raise RuntimeError("detector broke")

    analyzer.pipeline.detector.detect = broken  # the instance's detector fails on every frame from now on
    handed_out = []
    with pytest.raises(RuntimeError, match="detector broke"):
        for pixels, _result in analyzer.pipeline.process_images("clip", [(0, scene[0][0])]):
            handed_out.append(pixels)
    with pytest.raises(RuntimeError, match="detector broke"):
        handed_out.append(analyzer.result_image(scene[1][0]))
    assert handed_out == []


def test_a_live_cameras_first_frames_give_no_image_while_faces_are_hidden(default_model, scene):
    from emotiond.core.settings import load_settings
    from emotiond.workers.pipeline import Pipeline

    settings = load_settings(None, {"privacy": {"faces": "solid"}, "tracking": {"full_scan_interval": 3}})
    pipeline = Pipeline(settings, live_cameras=["door"])
    withheld = [pipeline.image(pipeline.detect("door", i, pixels)) is None for i, (pixels, _) in enumerate(scene[:6])]
    assert withheld == [True, True, True, False, False, False]
    assert pipeline.image(pipeline.detect("file", 0, scene[0][0])) is not None, "files start at their first frame"
    pipeline.end_tracks("door")
    assert pipeline.image(pipeline.detect("door", 6, scene[6][0])) is None, "a camera that ended starts afresh"
