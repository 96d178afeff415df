"""The public Python API: the README's example runs as written, and its answers are the pipeline's."""

from __future__ import annotations

import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
from skimage import data

import emotiond
from emotiond.daemon.core.errors import UsageError

from support.daemon import REPO, child_env


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


def test_analyze_matches_the_event_schema_result(analyzer):
    image = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    (face,) = analyzer.analyze(image)
    result = analyzer.result(image)
    (wire,) = result.faces
    assert (face.box, face.emotion, face.confidence, face.scores) == (wire.box, wire.emotion, wire.confidence,
                                                                      wire.scores)
    assert set(face.scores) == set(analyzer.labels) and abs(sum(face.scores.values()) - 1.0) < 0.01


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
    done = subprocess.run([sys.executable, "-c", "import sys, emotiond, emotiond.daemon.core.protocol; "
                           "print(sorted(m for m in ('cv2', 'tensorflow', 'ai_edge_litert') if m in sys.modules))"],
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
