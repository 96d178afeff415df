"""Face detectors: BlazeFace's decoding against its published spec, recall and false boxes of each backend on the
hard set (turned, small and absent faces), Haar finding tilted heads while tracking, and the settings that pick
a backend."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from emotiond.benchmarks import hardset
from emotiond.capture import synthetic
from emotiond.core.settings import DetectionSettings, Settings, TrackingSettings, default_models_dir
from emotiond.workers import blazeface
from emotiond.workers.detector import DetectorError, roll_from_eyes
from emotiond.workers.finder import RegionFinder
from emotiond.workers.haar import HaarFaceDetector
from emotiond.workers.litert import LiteRTModel

from support.daemon import child_env, run_cli

pytestmark = pytest.mark.model  # runs a neural network in the test process: make check leaves it out

RECALL_FLOOR = 0.98
TILT_FRAMES = 120  # upright for a second, then leaning 30 degrees (one head each way) for about a second


@pytest.fixture(scope="module")
def models_dir(default_model) -> object:
    return default_models_dir()


@pytest.fixture(scope="module")
def images() -> list[hardset.HardImage]:
    return hardset.hard_set()


def detect_all(detector, images: list[hardset.HardImage]) -> dict[str, hardset.Score]:
    return hardset.score(images, lambda pixels: detector.detect(pixels, cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY)).boxes)


def haar_sample(images: list[hardset.HardImage]) -> list[hardset.HardImage]:
    """Full Haar scans are slow: the turned faces at one of their two sizes, the small ones in one of their two
    places, and every face-free image."""
    return [image for image in images if image.kind == "none" or image.name.endswith(("-110px", "px-0"))]


@pytest.fixture(scope="module")
def scores(images, models_dir) -> dict[str, dict[str, hardset.Score]]:
    return {"haar": detect_all(HaarFaceDetector(DetectionSettings()), haar_sample(images)),
            "blazeface": detect_all(blazeface.BlazeFaceDetector(DetectionSettings(backend="blazeface"), models_dir),
                                    images)}


# ---------------------------------------------------------------- the published spec

@pytest.mark.parametrize(("name", "anchors"), [("full", 2304), ("short", 896)])
def test_anchors_follow_the_published_spec_and_fit_the_model(name, anchors, models_dir):
    model = blazeface.MODELS[name]
    centres = blazeface.ssd_anchors(model)
    assert centres.shape == (anchors, 2)
    assert centres.min() > 0 and centres.max() < 1
    runner = LiteRTModel(blazeface.load_model(blazeface.model_path(models_dir, model), model))
    assert runner.input_shape == (1, model.input_size, model.input_size, 3)
    outputs = runner.run(np.zeros(runner.input_shape, np.float32))
    assert sorted(out.shape for out in outputs) == [(1, anchors, 1), (1, anchors, 16)]


def test_short_range_anchors_put_two_per_cell_at_stride_8_then_six_at_stride_16():
    centres = blazeface.ssd_anchors(blazeface.MODELS["short"])
    first_cell = 0.5 / 16
    assert np.allclose(centres[0], centres[1]) and np.allclose(centres[0], [first_cell, first_cell])
    assert not np.allclose(centres[1], centres[2])
    stride_16 = centres[16 * 16 * 2:]
    assert np.allclose(stride_16[:6], [0.5 / 8, 0.5 / 8]) and not np.allclose(stride_16[6], stride_16[0])


def test_decoding_offsets_by_the_anchor_and_scales_by_the_input_size():
    model = blazeface.MODELS["full"]
    anchors = blazeface.ssd_anchors(model)
    regressors = np.zeros((len(anchors), 16), np.float32)
    logits = np.full(len(anchors), -20.0, np.float32)
    target = 1000
    regressors[target, :4] = [19.2, -9.6, 38.4, 57.6]  # centre +0.1, -0.05; w 0.2, h 0.3 (x before y)
    regressors[target, 4:6] = [-19.2, 0.0]  # first keypoint 0.1 left of the anchor
    logits[target] = 3.0
    boxes, points, scores = blazeface.decode(regressors, logits, anchors, model.input_size, 0.5)
    cx, cy = anchors[target] + (0.1, -0.05)
    assert np.allclose(boxes, [[cx - 0.1, cy - 0.15, cx + 0.1, cy + 0.15]], atol=1e-6)
    assert np.allclose(points[0, 0], anchors[target] - (0.1, 0.0), atol=1e-6)
    assert np.allclose(scores, [1 / (1 + math.exp(-3.0))])
    assert len(blazeface.decode(regressors, logits, anchors, model.input_size, 0.96)[2]) == 0


def test_weighted_nms_averages_overlapping_detections_by_score():
    boxes = np.array([[0.0, 0.0, 1.0, 1.0], [0.1, 0.0, 1.1, 1.0], [5.0, 5.0, 6.0, 6.0]], np.float32)
    points = np.stack([np.full((6, 2), v, np.float32) for v in (0.0, 1.0, 9.0)])
    scores = np.array([0.9, 0.6, 0.8], np.float32)
    order = np.argsort(-scores)
    merged, merged_points, merged_scores = blazeface.weighted_nms(boxes[order], points[order], scores[order])
    assert len(merged) == 2
    assert np.allclose(merged[0], [0.04, 0.0, 1.04, 1.0]) and np.allclose(merged_points[0], 0.4)
    assert np.allclose(merged_scores, [0.9, 0.8]) and np.allclose(merged[1], boxes[2])


def test_letterbox_places_the_frame_and_maps_points_back():
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[100:140, 300:340] = 255
    square, placement = blazeface.letterbox(frame, 192)
    assert square.shape == (192, 192, 3) and placement.pad_y == 24 and placement.pad_x == 0
    bright = np.argwhere(square[..., 0] > 128)
    centre = (bright.mean(axis=0)[::-1] + 0.5) / 192
    assert np.allclose(placement.to_frame(centre, 192), (320, 120), atol=2)
    tensor = blazeface.to_tensor(square)
    assert tensor.dtype == np.float32 and tensor.min() == -1.0 and tensor.max() == 1.0


def test_a_missing_or_altered_model_file_is_a_clear_user_error(tmp_path, models_dir):
    settings = DetectionSettings(backend="blazeface")
    with pytest.raises(DetectorError, match="run `emotiond models fetch`"):
        blazeface.BlazeFaceDetector(settings, tmp_path)
    altered = blazeface.model_path(tmp_path, blazeface.MODELS["full"])
    altered.parent.mkdir(parents=True)
    altered.write_bytes(blazeface.model_path(models_dir, blazeface.MODELS["full"]).read_bytes()[:-1] + b"x")
    with pytest.raises(DetectorError, match="sha256"):
        blazeface.BlazeFaceDetector(settings, tmp_path)


# ---------------------------------------------------------------- the hard set

def test_blazeface_finds_turned_and_small_faces(scores):
    found = scores["blazeface"]
    assert found["rotated"].faces == 48 and found["small"].faces == 24
    assert found["rotated"].recall >= RECALL_FLOOR
    assert found["small"].recall >= RECALL_FLOOR


def test_haar_misses_turned_faces_that_blazeface_finds(scores):
    """The positive control for the thresholds above: the frontal cascade fails them on turned faces."""
    assert scores["haar"]["rotated"].recall < 0.5
    assert scores["haar"]["small"].recall >= RECALL_FLOOR


def test_blazeface_adds_no_more_false_boxes_than_haar(scores):
    assert scores["haar"]["none"].images == len(hardset.FACE_FREE)
    assert scores["haar"]["none"].false_boxes > 0  # the face-free images do tempt a detector
    assert scores["blazeface"]["none"].false_boxes <= scores["haar"]["none"].false_boxes
    assert scores["blazeface"]["none"].false_boxes == 0
    for kind in ("rotated", "small"):
        assert scores["blazeface"][kind].false_boxes <= 1


def test_blazeface_keypoints_give_each_face_its_roll(images, models_dir):
    detector = blazeface.BlazeFaceDetector(DetectionSettings(backend="blazeface"), models_dir)
    errors = []
    for image in images:
        if image.kind != "rotated":
            continue
        found = detector.detect(image.pixels, image.pixels[..., 0])
        assert found.landmarks is not None and found.landmarks.shape == (len(found), 6, 2)
        errors.append(abs(float(found.rolls[0]) - image.rolls[0]))
        x, y, w, h = image.boxes[0]
        eyes = found.landmarks[0, :2]
        assert ((eyes > (x, y)) & (eyes < (x + w, y + h))).all(), f"{image.name}: eyes outside the face"
    assert np.median(errors) < 6 and max(errors) < 12


def test_roll_from_eyes_is_the_angle_that_levels_them():
    leaning = np.array([[[100.0, 100.0], [140.0, 123.1]]])  # right-hand eye lower: leaning clockwise by 30
    roll = float(roll_from_eyes(leaning)[0])
    assert roll == pytest.approx(30.0, abs=0.1)
    upright = cv2.transform(leaning, cv2.getRotationMatrix2D((120.0, 111.0), roll, 1.0))
    assert upright[0, 0, 1] == pytest.approx(upright[0, 1, 1], abs=0.1)


# ---------------------------------------------------------------- Haar, tracking and tilted heads

def tilt_recall(rotations: list[float], frames: int = TILT_FRAMES) -> tuple[float, float]:
    """Recall over the tilting-heads clip, and over its frames where heads lean 25 degrees or more."""
    finder = RegionFinder(HaarFaceDetector(DetectionSettings(haar_rotations=rotations)), TrackingSettings(),
                          ("happy",), rotations=tuple(rotations))
    found = total = tilted = tilted_found = 0
    for seq in range(frames):
        frame, truth, rolls = hardset.tilting_heads(seq)
        faces = finder.find(seq, frame, cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))[0]
        for box, roll in zip(truth, rolls, strict=True):
            hit = any(hardset.iou(box, other) >= hardset.MATCH_IOU for other in faces.boxes)
            found, total = found + hit, total + 1
            if abs(roll) >= 25:
                tilted_found, tilted = tilted_found + hit, tilted + 1
    return found / total, tilted_found / tilted


def test_haar_with_tracking_keeps_heads_that_tilt_by_30_degrees():
    before, before_tilted = tilt_recall([], frames=75)  # up to the first second at 30 degrees
    after, after_tilted = tilt_recall([15.0, 30.0])
    assert before_tilted < 0.2, "the frontal cascade alone should lose tilted heads (positive control)"
    assert after_tilted >= 0.95 and after >= 0.95
    assert after > before + 0.2


def test_a_face_found_in_a_turned_region_is_boxed_where_it_is_in_the_frame():
    detector = HaarFaceDetector(DetectionSettings())
    frame, truth, rolls = hardset.tilting_heads(75, faces=1)  # held at 30 degrees
    assert abs(rolls[0]) == 30
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    x, y, w, h = truth[0]
    region = (x - w, y - h // 2, 2 * w + w // 3, 2 * h)  # the face is off the region's centre
    assert detector.detect_regions(gray, [region], [w], 40) == [None]
    (turned,) = detector.detect_rotated(gray, [region], [w], 40, [rolls[0]])
    assert turned is not None and hardset.iou(turned, truth[0]) >= 0.6


# ---------------------------------------------------------------- large frames

def test_haar_scans_a_1080p_frame_at_most_640_px_wide_and_boxes_faces_in_frame_pixels():
    """By default a full scan of a 1920x1080 frame looks at it 640 px wide: faces from 72 px are found and boxed
    in the frame's own pixels, a 56-px face only by a full-size scan (max_scan_width = 0); a 640x480 frame is
    scanned exactly as before."""
    scene = synthetic.SceneSpec(faces=4, width=1920, height=1080, frames=1, face_sizes=(0.16, 0.10, 0.07, 0.05))
    frame, truth = synthetic.render(scene, 0)
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    assert [box[2] for box in truth] == [173, 126, 89, 56]

    def found(settings: DetectionSettings) -> list[bool]:
        boxes = HaarFaceDetector(settings).detect(frame, gray).boxes
        return [any(hardset.iou(box, other) >= hardset.MATCH_IOU for other in boxes) for box in truth]

    assert DetectionSettings().max_scan_width == 640
    assert found(DetectionSettings()) == [True, True, True, False]
    assert found(DetectionSettings(max_scan_width=0)) == [True, True, True, True]
    vga, _ = synthetic.render(synthetic.SceneSpec(faces=4, frames=1), 0)
    vga_gray = cv2.cvtColor(vga, cv2.COLOR_BGR2GRAY)
    capped = HaarFaceDetector(DetectionSettings()).detect(vga, vga_gray).boxes
    assert len(capped) == 4
    assert np.array_equal(capped, HaarFaceDetector(DetectionSettings(max_scan_width=0)).detect(vga, vga_gray).boxes)


# ---------------------------------------------------------------- choosing the backend

def test_the_backend_comes_from_toml_env_or_flag(tmp_path):
    env = child_env(tmp_path)
    shown = run_cli("config", "show", "--detector", "blazeface", env=env)
    assert shown.returncode == 0, shown.stderr
    assert 'backend = "blazeface"' in shown.stdout
    from_env = run_cli("config", "show", env={**env, "EMOTIOND_DETECTION__BACKEND": "blazeface",
                                              "EMOTIOND_DETECTION__BLAZEFACE_MODEL": "short"})
    assert 'backend = "blazeface"' in from_env.stdout and 'blazeface_model = "short"' in from_env.stdout
    bad = run_cli("config", "show", env={**env, "EMOTIOND_DETECTION__BACKEND": "yolo"})
    assert bad.returncode == 2 and "detection.backend" in bad.stderr and "Traceback" not in bad.stderr
    assert Settings().detection.backend == "haar"


def test_the_daemon_refuses_to_start_blazeface_without_its_models(tmp_path, default_model):
    models = tmp_path / "models"
    models.mkdir()
    (models / default_model.name).symlink_to(default_model)
    env = child_env(tmp_path / "run", EMOTIOND_MODELS__DIR=str(models))
    refused = run_cli("run", "--source", "demo", "--detector", "blazeface", env=env)
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert "run `emotiond models fetch`" in refused.stderr and "Traceback" not in refused.stderr
    assert len([line for line in refused.stderr.splitlines() if "emotiond" in line and "models fetch" in line]) == 1
