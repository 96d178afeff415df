"""``emotiond view`` for real: a daemon on a looping video of real faces, the viewer on a virtual X display,
keys sent with xdotool, and the screen read back with xwd.

Every key's effect is seen before the next key is sent: the viewer takes at most one pending key (see
``Display.key``), so on a busy machine a key sent too soon replaces the one before it."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from emotiond.capture import synthetic
from emotiond.clients.view.viewer import WINDOW_TITLE

from support.clients import best_iou, drawn_boxes, palette_mask, paused_shown, waiting_banner_shown
from support.daemon import EMOTIOND, REPO, wait_for


def window_image(display, window: str) -> np.ndarray:
    x, y, width, height = display.geometry(window)
    return display.screenshot()[y:y + height, x:x + width]


def overlay_on_screen(display, window: str) -> bool:
    """Overlay colours in the window; a window still entirely black missed its first expose, so expose it."""
    image = window_image(display, window)
    if not image.any():
        display.expose(window)
    return palette_mask(image).sum() > 500


def screen_when(display, window: str, condition, timeout: float, what: str) -> np.ndarray:
    """The window's image once ``condition(image)`` holds."""
    def check() -> list[np.ndarray] | None:
        image = window_image(display, window)
        return [image] if condition(image) else None

    return wait_for(check, timeout, what, interval=0.2)[0]


def press(display, window: str, key: str, condition: Callable[[np.ndarray], bool], timeout: float,
          what: str) -> np.ndarray:
    """Press ``key`` and return the window's image once ``condition(image)`` shows the key took effect: a key
    that never arrived fails here, not as some later wait that cannot succeed in the state left behind."""
    display.key(window, key)
    return screen_when(display, window, condition, timeout, what)


def snapshot(display, window: str, printed: Path, taken: set[Path]) -> Path:
    """Press ``s`` and return the new snapshot file once the viewer has printed ``snapshot PATH`` (it prints after
    the file is written, so the key was handled)."""
    display.key(window, "s")

    def written() -> Path | None:
        paths = {Path(line.split(" ", 1)[1]) for line in printed.read_text().splitlines()
                 if line.startswith("snapshot ")}
        return next(iter(paths - taken), None)

    path = wait_for(written, 10, "no snapshot written")
    taken.add(path)
    return path


def snapshot_seq(path: Path) -> int:
    return int(re.match(r"tv-(\d+)-", path.name).group(1))


OLD_DAEMON_SEQ = 300  # how far the first daemon counts before it stops
NEW_DAEMON_FPS = 5  # the second daemon's pace: its seq numbers stay far below the first one's for a minute


def test_viewer_draws_boxes_on_faces_and_survives_a_daemon_restart(start_daemon, watch, videos, default_model, xvfb,
                                                                    tmp_path):
    video = videos["one_face"]
    truth = synthetic.load_truth(video)
    daemon = start_daemon("--source", f"tv={video}", "--loop")  # file mode: it counts seq numbers fast
    old_results = watch(daemon.results_endpoint, ("result",))
    snapshots = tmp_path / "snaps"
    taken: set[Path] = set()
    err_path, out_path = tmp_path / "viewer.err", tmp_path / "viewer.out"
    with out_path.open("w") as out, err_path.open("w") as err:
        viewer = subprocess.Popen([*EMOTIOND, "view", "--snapshots", str(snapshots), "--waiting-after", "1"],
                                  cwd=REPO, env=xvfb.env(daemon.env), stdout=out, stderr=err)
    try:
        window = wait_for(lambda: (xvfb.windows(WINDOW_TITLE) or [None])[0], 30, "no viewer window")
        # live: overlay colours appear on screen once frames flow
        wait_for(lambda: overlay_on_screen(xvfb, window), 60,
                 f"no overlay on screen:\n{err_path.read_text()[-2000:]}", interval=0.5)

        # pause, snapshot: the snapshot names the seq shown, the screen shows exactly the snapshot
        assert not paused_shown(window_image(xvfb, window)), "positive control: no paused badge while live"
        press(xvfb, window, "p", paused_shown, 10, "the paused badge after the first p")
        shot_path = snapshot(xvfb, window, out_path, taken)
        snapshot_image = cv2.imread(str(shot_path))
        assert paused_shown(snapshot_image), "the snapshot of the paused window has the badge"
        screen = screen_when(xvfb, window, lambda image: image.shape == snapshot_image.shape
                             and np.abs(image.astype(int) - snapshot_image).mean() < 1.0, 10,
                             "the paused window to show what the snapshot saved")
        assert screen.shape == (480, 640, 3)

        seq = snapshot_seq(shot_path)
        true_box = truth[seq % len(truth)][0]
        mask = palette_mask(screen)
        assert best_iou(mask, true_box) >= 0.5, (seq, true_box, drawn_boxes(mask))
        x, y, w, h = true_box
        far = mask.copy()
        far[max(0, y - 60):y + h + 60, max(0, x - 130):x + w + 130] = False  # box, label and score bars
        assert far.sum() < 50, "overlay colours away from the face"

        # the daemon stops: the window keeps the old daemon's last frame under the "waiting for daemon" banner
        live = press(xvfb, window, "p", lambda image: not paused_shown(image), 10,
                     "the paused badge to go away after the second p")
        assert not waiting_banner_shown(live), "positive control: no banner while live"
        daemon.wait_for(lambda: any(r.seq >= OLD_DAEMON_SEQ for r in old_results.results()), 120,
                        what=f"the first daemon to reach seq {OLD_DAEMON_SEQ}")
        daemon.stop()
        waiting = screen_when(xvfb, window, waiting_banner_shown, 15, "the waiting banner after the daemon left")
        last_old = snapshot(xvfb, window, out_path, taken)
        last_old_seq = snapshot_seq(last_old)
        assert last_old_seq >= seq

        # a new daemon on the same runtime folder: the screen changes to its frames, banner gone, seq from 0 again
        config = tmp_path / "paced.toml"
        config.write_text(f'[[sources]]\nname = "tv"\nurl = "{video}"\nrealtime = true\nloop = true\n'
                          f"fps = {NEW_DAEMON_FPS}\n")
        start_daemon("--config", str(config), env={"EMOTIOND_BUS__RUNTIME_DIR": str(daemon.runtime_dir)})
        resumed = screen_when(xvfb, window, lambda image: not waiting_banner_shown(image)
                              and np.abs(image.astype(int) - waiting).mean() > 1.0
                              and palette_mask(image).sum() > 500, 90, "the new daemon's frames on screen")
        assert resumed.shape == waiting.shape
        first_new = snapshot(xvfb, window, out_path, taken)
        new_seq = snapshot_seq(first_new)
        assert new_seq < last_old_seq, (f"the frame shown after the restart (seq {new_seq}) must come from the new "
                                        f"daemon, which counts from 0 (the old one had reached {last_old_seq})")
        assert not waiting_banner_shown(cv2.imread(str(first_new)))

        assert viewer.poll() is None, "the viewer still runs, so its exit below is the q's doing"
        xvfb.key(window, "q")
        assert viewer.wait(15) == 0
    finally:
        if viewer.poll() is None:
            viewer.kill()
            viewer.wait(5)


def test_the_paused_badge_is_found_only_when_paused():
    from emotiond.clients.messages import MessagePicker
    from emotiond.clients.view.viewer import ViewerModel

    model = ViewerModel(MessagePicker({}))
    assert paused_shown(model.compose(0.0, paused=True))
    assert not paused_shown(model.compose(0.0))


def test_viewer_without_a_display_says_what_to_do(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    done = subprocess.run([*EMOTIOND, "view", "--runtime-dir", str(tmp_path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "no display" in done.stderr and "emotiond analyze" in done.stderr


def test_snapshot_names_are_unique(tmp_path: Path):
    from emotiond.clients.view.viewer import snapshot_path

    first = snapshot_path(tmp_path, None)
    first.write_bytes(b"x")
    assert snapshot_path(tmp_path, None) != first
