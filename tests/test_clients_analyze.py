"""``emotiond analyze`` on real face photos and a short video, headless, with a corrupt file in the batch."""

from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

import cv2
import pytest

from emotiond.capture import synthetic
from emotiond.core.bundle import FER2013_LABELS
from emotiond.core.settings import DEFAULT_MODEL_NAME
from emotiond.workers.tracking import iou

from support.clients import best_iou, palette_mask
from support.daemon import EMOTIOND, REPO


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("analyze-inputs")
    stills = root / "stills"
    stills.mkdir()
    spec = synthetic.SceneSpec(faces=2, frames=40)
    truth = {}
    for index in (0, 30):
        frame, boxes = synthetic.render(spec, index)
        cv2.imwrite(str(stills / f"scene{index}.png"), frame)
        truth[f"scene{index}"] = boxes
    (stills / "notes.txt").write_text("ignored: not an image or video suffix")
    corrupt = root / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    video = synthetic.write_video(root / "clip.mp4", synthetic.SceneSpec(faces=1, frames=12))
    (root / "truth.json").write_text(json.dumps(truth))
    return {"stills": stills, "corrupt": corrupt, "video": video, "truth": root / "truth.json"}


def analyze(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}  # headless
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return subprocess.run([*EMOTIOND, "analyze", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_images_video_and_a_corrupt_file(inputs, default_model, tmp_path):
    out = tmp_path / "out"
    done = analyze(str(inputs["stills"]), str(inputs["corrupt"]), str(inputs["video"]), "--out", str(out),
                   "--progress")
    assert done.returncode == 1, done.stderr  # one input failed, the rest were processed
    assert f"emotiond analyze: {inputs['corrupt']}: not a readable image" in done.stderr
    assert "] 100% 4/4 files 14/14 frames" in done.stderr  # the progress bar, at its end
    assert "4 files (0 already complete, 1 failed), 14 frames, " in done.stderr  # the summary

    results = [json.loads(line) for line in done.stdout.splitlines()]
    truth = json.loads(inputs["truth"].read_text())
    images = [r for r in results if r["source"].endswith(".png")]
    assert sorted(r["camera"] for r in images) == ["scene0", "scene30"]
    for result in images:
        assert result["frame_size"] == [640, 480] and result["model"] == DEFAULT_MODEL_NAME
        assert len(result["faces"]) == 2
        for true_box in truth[result["camera"]]:
            assert max(iou(tuple(true_box), tuple(f["box"])) for f in result["faces"]) >= 0.4
        for face in result["faces"]:
            assert set(face["scores"]) == set(FER2013_LABELS) and face["emotion"] in FER2013_LABELS
        annotated = cv2.imread(str(out / f"{result['camera']}.annotated.png"))
        mask = palette_mask(annotated)
        assert all(best_iou(mask, tuple(f["box"])) > 0.9 for f in result["faces"])

    clip = [r for r in results if r["source"].endswith("clip.mp4")]
    assert [r["seq"] for r in clip] == list(range(12))
    assert clip[3]["t"] == pytest.approx(0.1)
    video_truth = synthetic.load_truth(inputs["video"])
    found = sum(any(iou(video_truth[r["seq"]][0], tuple(f["box"])) >= 0.4 for f in r["faces"]) for r in clip)
    assert found >= 11
    capture = cv2.VideoCapture(str(out / "clip.annotated.mp4"))
    frames = 0
    while capture.read()[0]:
        frames += 1
    capture.release()
    assert frames == 12


def test_csv_per_video_and_for_images(inputs, default_model, tmp_path):
    out = tmp_path / "csv"
    done = analyze(str(inputs["video"]), str(inputs["stills"] / "scene0.png"), "--out", str(out), "--format", "csv")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    rows = list(csv.DictReader((out / "clip.csv").open()))
    assert sorted({int(r["seq"]) for r in rows}) == list(range(12))
    assert all(r["camera"] == "clip" and r["record"] in ("face", "frame") for r in rows)
    assert json.loads(rows[0]["extra"])["source"].endswith("clip.mp4")
    image_rows = list(csv.DictReader((out / "images.csv").open()))
    assert len([r for r in image_rows if r["record"] == "face"]) == 2


def test_nothing_readable_fails_cleanly(default_model, tmp_path):
    missing = tmp_path / "missing.png"
    done = analyze(str(missing))
    assert done.returncode == 1 and f"{missing}: no such file" in done.stderr
    assert "Traceback" not in done.stderr
    done = analyze(str(tmp_path), "--format", "csv")
    assert done.returncode == 2 and "--out" in done.stderr
