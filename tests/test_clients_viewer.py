"""``emotiond view`` for real: a daemon on a looping video of real faces, the viewer on a virtual X display,
keys sent with xdotool, and the screen read back with xwd."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np

from emotiond.clients.viewer import WINDOW_TITLE
from emotiond.daemon.capture import synthetic

from support.clients import best_iou, drawn_boxes, palette_mask, wait_for, xvfb  # noqa: F401
from support.daemon import EMOTIOND, REPO


def window_image(display, window: str) -> np.ndarray:
    x, y, width, height = display.geometry(window)
    return display.screenshot()[y:y + height, x:x + width]


def overlay_on_screen(display, window: str) -> bool:
    """Overlay colours in the window; a window still entirely black missed its first expose, so expose it."""
    image = window_image(display, window)
    if not image.any():
        display.expose(window)
    return palette_mask(image).sum() > 500


def test_viewer_draws_boxes_on_faces_and_survives_a_daemon_restart(start_daemon, videos, default_model, xvfb,  # noqa: F811
                                                                    tmp_path):
    video = videos["one_face"]
    truth = synthetic.load_truth(video)
    daemon = start_daemon("--source", f"tv={video}", "--realtime", "--loop")
    snapshots = tmp_path / "snaps"
    err_path = tmp_path / "viewer.err"
    with (tmp_path / "viewer.out").open("w") as out, err_path.open("w") as err:
        viewer = subprocess.Popen([*EMOTIOND, "view", "--snapshots", str(snapshots), "--waiting-after", "1"],
                                  cwd=REPO, env=xvfb.env(daemon.env), stdout=out, stderr=err)
    try:
        window = wait_for(lambda: (xvfb.windows(WINDOW_TITLE) or [None])[0], 30, "no viewer window")
        daemon.wait_ready(2)
        # live: overlay colours appear on screen once frames flow
        wait_for(lambda: overlay_on_screen(xvfb, window), 30,
                 f"no overlay on screen:\n{err_path.read_text()[-2000:]}", interval=0.5)

        # pause, snapshot: the snapshot names the seq shown, the screen shows exactly the snapshot
        xvfb.key(window, "p")
        time.sleep(0.3)
        xvfb.key(window, "s")
        shot_path = wait_for(lambda: next(iter(snapshots.glob("tv-*.png")), None), 10, "no snapshot written")
        time.sleep(0.3)
        screen = window_image(xvfb, window)
        snapshot = cv2.imread(str(shot_path))
        assert screen.shape == snapshot.shape == (480, 640, 3)
        assert np.abs(screen.astype(int) - snapshot).mean() < 1.0, "the window shows what the snapshot saved"

        seq = int(re.match(r"tv-(\d+)-", shot_path.name).group(1))
        true_box = truth[seq % len(truth)][0]
        mask = palette_mask(screen)
        assert best_iou(mask, true_box) >= 0.5, (seq, true_box, drawn_boxes(mask))
        x, y, w, h = true_box
        far = mask.copy()
        far[max(0, y - 60):y + h + 60, max(0, x - 130):x + w + 130] = False  # box, label and score bars
        assert far.sum() < 50, "overlay colours away from the face"

        # daemon restart: the viewer waits, then shows the new daemon's frames (seq from 0 again)
        xvfb.key(window, "p")
        daemon.stop()
        wait_for(lambda: "waiting for daemon" in err_path.read_text(), 10, "viewer did not notice the daemon left")
        start_daemon("--source", f"tv={video}", "--realtime", "--loop",
                     env={"EMOTIOND_BUS__RUNTIME_DIR": str(daemon.runtime_dir)})
        wait_for(lambda: err_path.read_text().count("showing camera tv") >= 2, 60,
                 f"viewer did not resume:\n{err_path.read_text()[-2000:]}", interval=0.3)
        wait_for(lambda: overlay_on_screen(xvfb, window), 20, "no overlay after restart",
                 interval=0.5)

        xvfb.key(window, "q")
        assert viewer.wait(15) == 0
    finally:
        if viewer.poll() is None:
            viewer.kill()
            viewer.wait(5)


def test_viewer_without_a_display_says_what_to_do(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    done = subprocess.run([*EMOTIOND, "view", "--runtime-dir", str(tmp_path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "no display" in done.stderr and "emotiond analyze" in done.stderr


def test_snapshot_names_are_unique(tmp_path: Path):
    from emotiond.clients.viewer import snapshot_path

    first = snapshot_path(tmp_path, None)
    first.write_bytes(b"x")
    assert snapshot_path(tmp_path, None) != first
