"""One pipeline: ``emotiond analyze`` and the daemon give the same boxes, track ids and emotions, frame by frame."""

from __future__ import annotations

import json
import subprocess

import pytest

from emotiond.capture import synthetic

from support.daemon import EMOTIOND, REPO, child_env

FRAMES = 90


@pytest.fixture(scope="module")
def four_faces(tmp_path_factory: pytest.TempPathFactory):
    """A held-out multi-face clip: four real faces moving and zooming, long enough for several scans."""
    return synthetic.write_video(tmp_path_factory.mktemp("agreement") / "four.mp4",
                                 synthetic.SceneSpec(faces=4, frames=FRAMES))


def frame_faces(records: list[dict]) -> dict[int, list[tuple]]:
    """seq -> sorted (box, track id, emotion, landmarks) of each face."""
    return {r["seq"]: sorted((tuple(f["box"]), f.get("track_id"), f["emotion"],
                              tuple(tuple(point) for point in f.get("landmarks", ()))) for f in r["faces"])
            for r in records if "faces" in r}


def analyze(video, env) -> dict[int, list[tuple]]:
    done = subprocess.run([*EMOTIOND, "analyze", str(video)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300, check=True)
    return frame_faces([json.loads(line) for line in done.stdout.splitlines()])


def daemon(video, env, start_daemon, events) -> dict[int, list[tuple]]:
    handle = start_daemon("--source", f"clip={video}", workers=1, env=env)
    reader = events(handle, "--until-eos", "--timeout", "240")
    records = reader.wait(300)
    assert handle.process.wait(60) == 0
    return frame_faces(records)


@pytest.mark.slow
@pytest.mark.parametrize(("tracking", "detector"), [("true", "haar"), ("false", "haar"), ("true", "blazeface")])
def test_analyze_and_the_daemon_agree_frame_by_frame(tracking, detector, four_faces, start_daemon, events, tmp_path,
                                                      default_model):
    settings = {"EMOTIOND_TRACKING__ENABLED": tracking, "EMOTIOND_DETECTION__BACKEND": detector}
    env = child_env(tmp_path / "analyze-run", **settings)
    offline = analyze(four_faces, env)
    live = daemon(four_faces, settings, start_daemon, events)
    assert sorted(offline) == list(range(FRAMES)), "analyze skipped frames"
    assert sorted(live) == list(range(FRAMES)), "the daemon lost frames"
    assert sum(len(faces) for faces in offline.values()) >= 3 * FRAMES, "too few faces found to compare"
    if tracking == "true":
        assert all(track is not None for faces in offline.values() for _, track, _, _ in faces)
    if detector == "blazeface":
        assert all(len(points) == 6 for faces in offline.values() for *_, points in faces)
    disagreements = [seq for seq in range(FRAMES) if offline[seq] != live[seq]]
    assert not disagreements, (f"{len(disagreements)} of {FRAMES} frames differ; first seq {disagreements[0]}: "
                               f"analyze {offline[disagreements[0]]} daemon {live[disagreements[0]]}")
