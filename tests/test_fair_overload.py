"""Deliberate overload of a real daemon: every live camera drops about the same share of its frames.

Three live cameras (the same one-face video of 60 frames, looped and paced at 60 fps) on two workers with
tracking on: one worker keeps one camera and the other keeps two, whatever the placement. The face moves
through its whole path every second and jumps back at each loop, so frames skipped by a busy worker often
leave it outside its search region and bring a full scan: both workers are overloaded on any machine. Without
fair dispatch the lone camera loses less than the two that share a worker, and the camera first in the config
less than its neighbour. Drops are read from /metrics over a window after every camera has been served by both
workers joined; which worker served each camera in that window is read from the results on the bus, so the claim
is checked on cameras that really share a worker (two on one, the third alone on the other).
"""

from __future__ import annotations

import pytest

from support.daemon import BusWatcher, metric_value

FPS = 60
WINDOW_FRAMES = 300  # per camera: 5 s at 60 fps, more when the machine is busy
CAMERAS = ("cam0", "cam1", "cam2")
WORKERS = ("w1", "w2")
WINDOWS = 3  # windows measured at most until one sees no camera change worker
# 15-90 s of deliberate overload of both cores: alone, after the parallel part
pytestmark = [pytest.mark.timeout(300), pytest.mark.heavy, pytest.mark.serial]


def counts(text: str) -> dict[str, tuple[float, float]]:
    """Frames captured and dropped so far, per camera."""
    return {camera: (metric_value(text, "emotiond_frames_captured_total", camera=camera),
                     metric_value(text, "emotiond_frames_dropped_total", camera=camera)) for camera in CAMERAS}


def measure(daemon, watcher: BusWatcher) -> tuple[dict, dict, dict[str, set[str]]]:
    """Frames captured and dropped per camera at the start and end of a window of ``WINDOW_FRAMES`` captured per
    camera, and the workers whose results for each camera came during it."""
    start = counts(daemon.metrics_text())
    mark = len(watcher.received)
    end = daemon.wait_for(lambda: (lambda now: now if all(now[c][0] - start[c][0] >= WINDOW_FRAMES
                                                          for c in CAMERAS) else None)(counts(daemon.metrics_text())),
                          timeout=120, what=f"{WINDOW_FRAMES} frames captured per camera")
    in_window = [m for _, m in list(watcher.received)[mark:]]
    return start, end, {c: {r.worker for r in in_window if r.camera == c} for c in CAMERAS}


def test_overloaded_cameras_drop_alike_whatever_worker_they_share(start_daemon, videos, tmp_path, default_model):
    config = tmp_path / "cameras.toml"
    config.write_text("".join(f'[[sources]]\nname = "{camera}"\nurl = "{videos["one_face"]}"\nrealtime = true\n'
                              f"loop = true\nfps = {FPS}\n\n" for camera in CAMERAS))
    daemon = start_daemon("--config", str(config), workers=len(WORKERS))
    watcher = BusWatcher(daemon.results_endpoint, kinds=("result",))
    try:
        daemon.wait_ready(workers=2, timeout=120)
        daemon.wait_for(lambda: all(daemon.metric("emotiond_frames_processed_total", camera=c) >= 20
                                    for c in CAMERAS) and all(f"worker {w} ready" in daemon.log() for w in WORKERS),
                        timeout=90, what="every camera served, and both workers joined")
        # A placement made before the cameras' costs were known is corrected once they are (then it holds for
        # AFFINITY_SECONDS): a window that saw a camera change worker is measured again.
        for _attempt in range(WINDOWS):
            start, end, served_by = measure(daemon, watcher)
            if all(len(workers) == 1 for workers in served_by.values()):
                break
            print(f"a camera changed worker during the window: {served_by}; measuring again")
    finally:
        watcher.close()
    # With tracking on, a camera keeps its worker: one holds two cameras, the other the third, through the window.
    assert all(len(workers) == 1 for workers in served_by.values()), f"a camera changed worker: {served_by}"
    placement: dict[str, list[str]] = {}
    for camera, (worker,) in served_by.items():
        placement.setdefault(worker, []).append(camera)
    assert sorted(len(placement.get(worker, ())) for worker in WORKERS) == [1, 2], placement
    drops = {c: (end[c][1] - start[c][1]) / (end[c][0] - start[c][0]) for c in CAMERAS}
    served = {c: max(0.0, 1.0 - drop) for c, drop in drops.items()}
    print(f"placement {placement}; drop rates {drops}")
    assert sum(drops.values()) / len(drops) > 0.1, f"not overloaded, nothing to share: {drops}"  # positive control
    assert max(drops.values()) <= 1.5 * min(drops.values()) + 0.02, drops
    # In deep overload (a busy machine) every drop rate is high and the limit above says little: the shares
    # served must then be alike too.
    assert max(served.values()) <= 1.5 * min(served.values()) + 0.02, f"served shares {served}"
