"""End to end: the daemon on videos of real faces, read back through ``emotiond events``."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import cv2
import numpy as np

from emotiond.capture import synthetic
from emotiond.core.bundle import FER2013_LABELS
from emotiond.core.settings import DEFAULT_MODEL_NAME
from emotiond.workers.tracking import iou

from support.daemon import child_env, run_cli


def recall(results: list[dict], truth: list[list[tuple]], threshold: float = 0.4) -> float:
    found = total = 0
    for result in results:
        boxes = [tuple(f["box"]) for f in result["faces"]]
        for true_box in truth[result["seq"]]:
            total += 1
            found += any(iou(true_box, b) >= threshold for b in boxes)
    return found / total


def test_file_mode_reports_every_frame_with_correct_faces(start_daemon, events, videos, default_model):
    daemon = start_daemon("--source", f"tv={videos['one_face']}")
    reader = events(daemon, "--until-eos", "--timeout", "120")
    assert daemon.process.wait(120) == 0, daemon.log()[-2000:]
    results = reader.wait(30)
    truth = synthetic.load_truth(videos["one_face"])

    assert sorted(r["seq"] for r in results) == list(range(len(truth)))
    assert {r["camera"] for r in results} == {"tv"}
    assert all(r["frame_size"] == [640, 480] and r["model"] == DEFAULT_MODEL_NAME for r in results)
    assert recall(results, truth) >= 0.95
    faces = [f for r in results for f in r["faces"]]
    assert {f["emotion"] for f in faces} <= set(FER2013_LABELS)
    assert all(set(f["scores"]) == set(FER2013_LABELS) for f in faces)
    assert all(abs(sum(f["scores"].values()) - 1.0) < 0.01 for f in faces)
    emotions = Counter(f["emotion"] for f in faces)
    assert emotions.most_common(1)[0][0] == "happy", emotions  # the astronaut smiles
    for r in results:
        assert r["published_at"] >= r["captured_at"]
        assert {"total", "detect", "classify"} <= set(r["latency_ms"])


def test_two_cameras_share_the_workers(start_daemon, events, videos, default_model):
    daemon = start_daemon("--source", f"a={videos['two_faces']}", "--source", f"b={videos['one_face']}")
    reader = events(daemon, "--until-eos", "--timeout", "120")
    assert daemon.process.wait(120) == 0, daemon.log()[-2000:]
    results = reader.wait(30)
    per_camera = Counter(r["camera"] for r in results)
    assert per_camera == {"a": 45, "b": 60}
    truth = synthetic.load_truth(videos["two_faces"])
    assert recall([r for r in results if r["camera"] == "a"], truth) >= 0.95


def test_image_folder_skips_non_images_and_counts_them(start_daemon, events, tmp_path, default_model):
    folder = tmp_path / "stills"
    folder.mkdir()
    spec = synthetic.SceneSpec(faces=1, frames=3)
    for index in range(3):
        frame, _ = synthetic.render(spec, index * 10)
        cv2.imwrite(str(folder / f"frame{index}.png"), frame)
    (folder / "notes.txt").write_text("not an image")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 truncated jpeg")
    daemon = start_daemon("--source", f"stills={folder}", "--workers", "1")
    reader = events(daemon, "--until-eos", "--timeout", "60")
    deadline_results = reader.wait(90)
    assert sorted(r["seq"] for r in deadline_results) == [0, 1, 2]
    assert all(len(r["faces"]) == 1 for r in deadline_results)
    assert daemon.process.wait(30) == 0
    assert "skipping" in daemon.log() and "notes.txt" in daemon.log() and "broken.jpg" in daemon.log()


def test_bad_sources_and_models_fail_fast_with_one_line(tmp_path, default_model):
    env = child_env(tmp_path / "run")
    missing = run_cli("run", "--source", str(tmp_path / "nope.mp4"), env=env)
    assert missing.returncode == 2
    assert "no such file" in missing.stderr and len(missing.stderr.strip().splitlines()) == 1

    unsupported = run_cli("run", "--source", "gopher://example/x", env=env)
    assert unsupported.returncode == 2 and "unsupported URL scheme" in unsupported.stderr

    not_video = tmp_path / "clip.mp4"
    not_video.write_bytes(b"definitely not a video" * 100)
    corrupt = run_cli("run", "--source", str(not_video), env=env)
    assert corrupt.returncode == 2 and "cannot decode" in corrupt.stderr.replace("OpenCV can", "cannot")

    no_model = run_cli("run", "--source", "demo", "--model", "no-such-model", env=env)
    assert no_model.returncode == 2 and "emotiond models fetch" in no_model.stderr

    wrong = tmp_path / "wrong-shape"
    shutil.copytree(default_model, wrong)
    spec = json.loads((wrong / "bundle.json").read_text())
    spec["input"]["height"] = spec["input"]["width"] = 48
    (wrong / "bundle.json").write_text(json.dumps(spec))
    wrong_shape = run_cli("run", "--source", "demo", "--model", str(wrong), env=env)
    assert wrong_shape.returncode == 2 and "does not match bundle input" in wrong_shape.stderr

    tampered = tmp_path / "tampered"
    shutil.copytree(default_model, tampered)
    with (tampered / "model.tflite").open("ab") as fh:
        fh.write(b"\0")
    bad_hash = run_cli("run", "--source", "demo", "--model", str(tampered), env=env)
    assert bad_hash.returncode == 2 and "sha256" in bad_hash.stderr


def test_events_count_and_camera_filters(start_daemon, events, videos, default_model):
    daemon = start_daemon("--source", f"a={videos['two_faces']}", "--source", f"b={videos['one_face']}",
                          "--loop")
    only_b = events(daemon, "--camera", "b", "--count", "20", "--faces-only", "--timeout", "90")
    results = only_b.wait(100)
    assert only_b.process.returncode == 0
    assert len(results) == 20
    assert all(r["camera"] == "b" and r["faces"] for r in results)
    assert np.all(np.diff(sorted(r["seq"] for r in results)) >= 1)


def test_jpeg_transport_for_tcp_set_ups(start_daemon, events, videos, default_model):
    """With frame_encoding = jpeg (meant for tcp between hosts) frames still arrive whole and faces are found."""
    daemon = start_daemon("--source", f"tv={videos['one_face']}", env={"EMOTIOND_BUS__FRAME_ENCODING": "jpeg"})
    reader = events(daemon, "--until-eos", "--timeout", "120")
    assert daemon.process.wait(120) == 0, daemon.log()[-2000:]
    results = reader.wait(30)
    truth = synthetic.load_truth(videos["one_face"])
    assert sorted(r["seq"] for r in results) == list(range(len(truth)))
    assert recall(results, truth) >= 0.95
    assert np.mean([r["latency_ms"]["decode"] for r in results]) > 0.5  # JPEG decoding, not a raw view


def test_undecodable_single_image_ends_its_source_instead_of_retrying(start_daemon, tmp_path, default_model):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    daemon = start_daemon("--source", f"still={broken}", workers=1)
    assert daemon.process.wait(60) == 0, daemon.log()[-2000:]
    assert daemon.log().count("image does not decode") == 1
