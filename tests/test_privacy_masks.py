"""Privacy masks: a source's polygons are filled black in capture, so nothing inside one reaches the bus or is
detected, and every image shows them filled; bad polygons are refused at start in one line."""

from __future__ import annotations

import numpy as np
import pytest

from emotiond.capture.masks import PrivacyMasks
from emotiond.core.settings import ConfigError, load_settings

from support.daemon import child_env, run_cli

LEFT_HALF = [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]


def test_a_polygon_is_filled_and_nothing_else():
    frame = np.full((100, 200, 3), 200, np.uint8)
    masks = PrivacyMasks([[(0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)], [(0.75, 0.5), (1.0, 0.5), (1.0, 1.0)]])
    filled = masks.apply(frame)
    assert filled is frame, "a reader's own frame is filled in place"
    assert not frame[:, :100].any(), "the left half is black"
    assert (frame[:50, 101:] == 200).all(), "the top right quarter is untouched"
    assert not frame[99, 199].any() and (frame[99, 140] == 200).all(), "the triangle, and only it, on the right"
    shared = np.full((100, 200, 3), 200, np.uint8)
    shared.flags.writeable = False
    copy = masks.apply(shared)
    assert copy is not shared and not copy[:, :100].any() and (shared == 200).all()
    assert PrivacyMasks([]).apply(frame) is frame and not PrivacyMasks([])


@pytest.mark.parametrize("polygon, message", [
    ([[0, 0], [1, 0]], "at least 3 points"),
    ([[0, 0], [1.5, 0], [1, 1]], "outside the frame"),
    ([[0, 0], [0.5, 0.5], [1, 1]], "encloses no area"),
    ([[0, 0], [1, 1], [1, 0], [0, 0.6]], "crosses itself"),
    ([[0, 0], [1, 0], ["a", 1]], "valid number"),
    ([[0, 0], [0.5, 0], [0.5, 0.5]], None),
])
def test_bad_polygons_are_refused_naming_the_source_and_mask(polygon, message):
    overrides = {"sources": [{"name": "door", "url": "demo", "masks": [LEFT_HALF, polygon]}]}
    if message is None:
        assert load_settings(None, overrides).sources[0].masks[1] == [(0.0, 0.0), (0.5, 0.0), (0.5, 0.5)]
        return
    with pytest.raises(ConfigError) as refused:
        load_settings(None, overrides)
    assert len(refused.value.lines) == 1 and "sources.0.masks.1" in str(refused.value), refused.value.lines
    assert message in str(refused.value)


def test_emotiond_run_refuses_a_bad_mask_in_one_line(tmp_path):
    config = tmp_path / "site.toml"
    config.write_text('[[sources]]\nname = "door"\nurl = "demo"\nmasks = [[[0.0, 0.0], [2.0, 0.0], [1.0, 1.0]]]\n')
    done = run_cli("run", "--config", str(config), env=child_env(tmp_path / "rt"), timeout=60)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "sources.0.masks.0" in lines[0] and "outside the frame" in lines[0], lines


def test_a_masked_face_never_reaches_the_bus_nor_the_detector(start_daemon, default_model, watch, tmp_path):
    """The demo's left face sits in the frame's left half, which is masked: every frame on the bus has that half
    black, and faces are found only in the right half (the right face: the pipeline still works)."""
    config = tmp_path / "masked.toml"
    config.write_text('[[sources]]\nname = "door"\nurl = "demo"\nrealtime = true\nloop = true\n'
                      'masks = [[[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]]\n')
    daemon = start_daemon("--config", str(config), workers=1)
    watcher = watch(daemon.results_endpoint, kinds=("result", "frame"))
    daemon.wait_ready()

    def enough() -> bool:
        frames = [m for _, m in list(watcher.received) if hasattr(m, "pixels")]
        return len(frames) >= 20 and sum(len(r.faces) for r in watcher.results()) >= 20

    daemon.wait_for(enough, 60, "20 frames and 20 faces on the bus")
    frames = [m for _, m in list(watcher.received) if hasattr(m, "pixels")]
    for frame in frames:
        half = frame.pixels.shape[1] // 2
        assert frame.pixels[:, :half - 1].max() <= 8, "the masked half is black (raw frames, or JPEG's ringing)"
        assert frame.pixels[:, half + 1:].mean() > 40, "the rest is the scene"
    faces = [face for result in watcher.results() for face in result.faces]
    assert faces and all(face.box[0] >= 320 for face in faces), [f.box for f in faces if f.box[0] < 320]
