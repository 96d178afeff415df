"""The public Python API: the README's example runs as written, and its answers are the daemon's."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

import emotiond
from emotiond.capture import synthetic
from emotiond.core import protocol
from emotiond.core.errors import UsageError

from support.daemon import REPO, child_env

AGREEMENT_FRAMES = 45


def readme_example() -> str:
    """The first Python block of the README's "Python API" section."""
    section = (REPO / "README.md").read_text(encoding="utf-8").split("## Python API", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture(scope="module")
def analyzer(default_model):
    return emotiond.Analyzer()


def test_the_readme_example_runs_as_written(tmp_path, default_model):
    script = tmp_path / "example.py"
    script.write_text(readme_example())
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=child_env(tmp_path / "run"),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert re.fullmatch(r"\(\d+, \d+, \d+, \d+\) happy \d\.\d+", lines[0]), lines[0]
    assert lines[1:3] == ["['happy']", "['happy']"]
    frames = lines[3:]
    assert [int(line.split()[0]) for line in frames] == list(range(30))
    assert len({line.split(" ", 1)[1] for line in frames}) == 1, "one face, one track, one emotion throughout"


def face_key(face: emotiond.Face) -> tuple:
    """Everything a face carries, in a form that sorts: box, track id, emotion, confidence, scores, landmarks,
    the smoothed emotion and its score, and any other keys."""
    return (face.box, face.track_id, face.emotion, face.confidence, tuple(sorted(face.scores.items())),
            face.landmarks, face.smoothed_emotion, face.smoothed_confidence, json.dumps(face.extra, sort_keys=True))


def api_faces(result: protocol.Result) -> list[tuple]:
    """A frame's faces as the typed API gives them."""
    return sorted(face_key(face) for face in result.faces)


def daemon_faces(record: dict) -> list[tuple]:
    """A frame's faces from a line of ``emotiond events``, read into the same typed faces."""
    return sorted(face_key(emotiond.Face.from_dict(face)) for face in record["faces"])


def test_the_api_face_is_the_protocol_face(analyzer):
    """One Face everywhere: what ``emotiond.Face`` names, what ``analyze`` returns and what a result holds."""
    from emotiond.clients import api

    assert emotiond.Face is api.Face is protocol.Face
    image = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    (face,) = analyzer.analyze(image)
    assert type(face) is protocol.Face and face.emotion == "happy"
    if analyzer.settings.tracking.enabled:
        assert face.track_id is not None and face.smoothed_emotion in analyzer.labels
    (wire,) = protocol.decode(protocol.encode_result(analyzer.result(image))).faces
    assert wire == face and type(wire) is emotiond.Face


@pytest.fixture(scope="module")
def three_faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three real faces moving and zooming: several tracks, and emotions that differ between faces."""
    return synthetic.write_video(tmp_path_factory.mktemp("api") / "three.mp4",
                                 synthetic.SceneSpec(faces=3, frames=AGREEMENT_FRAMES))


def test_the_api_and_the_daemon_agree_frame_by_frame(analyzer, three_faces, start_daemon, events):
    """``Analyzer.analyze_video`` in this process and a real ``emotiond run`` in file mode, read by a subscriber,
    give each frame the same faces: boxes, track ids, emotions, confidences, every score, landmarks."""
    api = {result.seq: (result.frame_size, api_faces(result))
           for result in analyzer.analyze_video(three_faces, camera="clip")}
    first_frame = cv2.VideoCapture(str(three_faces))
    pixels = first_frame.read()[1]
    first_frame.release()
    single = sorted(face_key(face) for face in analyzer.analyze(pixels))

    handle = start_daemon("--source", f"clip={three_faces}", workers=1)
    records = events(handle, "--until-eos", "--timeout", "240").wait(300)
    assert handle.process.wait(60) == 0, handle.log()[-3000:]
    live = {r["seq"]: (tuple(r["frame_size"]), daemon_faces(r)) for r in records if r.get("camera") == "clip"
            and "faces" in r}

    assert sorted(api) == list(range(AGREEMENT_FRAMES)), "the API skipped frames"
    assert sorted(live) == list(range(AGREEMENT_FRAMES)), "the subscriber missed frames"
    assert sum(len(faces) for _, faces in api.values()) >= 2 * AGREEMENT_FRAMES, "too few faces to compare"
    assert len({face[2] for _, faces in api.values() for face in faces}) >= 2, "one emotion only: a weak check"
    if analyzer.settings.tracking.enabled:
        assert all(face[1] is not None for _, faces in api.values() for face in faces), "the API gave no track ids"
    for _, faces in api.values():
        for face in faces:
            scores = dict(face[4])
            assert set(scores) == set(analyzer.labels) and abs(sum(scores.values()) - 1.0) < 0.01
    disagreements = [seq for seq in range(AGREEMENT_FRAMES) if api[seq] != live[seq]]
    assert not disagreements, (f"{len(disagreements)} of {AGREEMENT_FRAMES} frames differ; first seq "
                               f"{disagreements[0]}: API {api[disagreements[0]]} daemon {live[disagreements[0]]}")
    # one image through Analyzer.analyze is the daemon's first frame of the clip (a track starts there)
    assert single == live[0][1]


def test_a_batch_gives_each_image_its_own_answer(analyzer):
    image = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    blank = np.full_like(image, 127)
    batch = analyzer.analyze_many([blank, image, image])
    assert [len(faces) for faces in batch] == [0, 1, 1]
    assert batch[1] == batch[2] == analyzer.analyze(image)


@pytest.mark.parametrize("bad", [None, "photo.jpg", np.zeros((10, 10, 3), np.float32), np.zeros((0, 5, 3), np.uint8),
                                 np.zeros((10, 10, 4), np.uint8)])
def test_bad_images_are_one_clear_error(analyzer, bad):
    with pytest.raises(UsageError, match="expected a uint8 image"):
        analyzer.analyze(bad)


def test_an_unreadable_video_is_one_clear_error(analyzer, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    with pytest.raises(UsageError, match="not a readable"):
        list(analyzer.analyze_video(broken))


def test_importing_emotiond_loads_no_model_or_opencv():
    done = subprocess.run([sys.executable, "-c", "import sys, emotiond, emotiond.core.protocol; "
                           "print(sorted(m for m in ('cv2', 'tensorflow', 'ai_edge_litert') if m in sys.modules))"],
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
