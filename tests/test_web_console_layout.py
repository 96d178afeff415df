"""The console's layout in Chromium on a crowded frame: one camera fills the grid, its chart has axes and a
legend, the score panels drawn on its frames do not cover one another, and /api/stats says where its figures
came from. A screenshot of the page is kept in the test's folder."""

from __future__ import annotations

import base64
import json
import urllib.request

import cv2
import numpy as np

from emotiond.capture import synthetic
from emotiond.clients.overlay import PANEL_BG
from emotiond.clients.web.sockets import EMOTION_CSS

from support.daemon import free_port, wait_for
from support.web import chromium  # noqa: F401

CHART_JS = """
const canvas = document.querySelector('.tile[data-camera="cam0"] canvas.chart');
return canvas ? canvas.toDataURL("image/png") : null;
"""
FRAME_JS = """
const canvas = document.querySelector('.tile[data-camera="cam0"] canvas.video');
return canvas && canvas.dataset.seq ? canvas.toDataURL("image/png") : null;
"""
WIDTHS_JS = """
const tile = document.querySelector('.tile[data-camera="cam0"]');
return [tile.getBoundingClientRect().width, document.getElementById("grid").clientWidth];
"""
AXIS_BGR = (0xa6, 0xa0, 0x9a)  # #9aa0a6


def canvas_image(driver, script: str) -> np.ndarray | None:
    data = driver.execute_script(script)
    if not data:
        return None
    png = base64.b64decode(data.split(",", 1)[1])
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)


def near(image: np.ndarray, bgr: tuple[int, int, int], tolerance: int = 24) -> np.ndarray:
    return (np.abs(image[..., :3].astype(int) - np.array(bgr)).max(axis=2) <= tolerance)


def css_to_bgr(css: str) -> tuple[int, int, int]:
    return int(css[5:7], 16), int(css[3:5], 16), int(css[1:3], 16)


def panels_apart(image: np.ndarray) -> bool:
    """The dark score panels on a frame: found as separate rectangles, none of them holding two panels' rows."""
    mask = near(image, PANEL_BG, 6).astype(np.uint8)
    _count, _labels, boxes, _centroids = cv2.connectedComponentsWithStats(mask)
    panels = [box for box in boxes[1:] if box[2] >= 40 and box[3] >= 40]
    return len(panels) >= 2 and all(h < 1.5 * 81 for _x, _y, _w, h, _area in panels)


def test_one_crowded_camera_fills_the_grid_with_a_charted_legend(start_daemon, default_model, chromium, tmp_path):  # noqa: F811
    video = synthetic.write_video(tmp_path / "crowd.mp4", synthetic.SceneSpec(
        faces=4, frames=150, face_sizes=(0.3, 0.3, 0.3, 0.3)))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    daemon = start_daemon("--source", str(video), "--realtime", "--loop", workers=1,
                          env={"EMOTIOND_WEB__ENABLED": "true", "EMOTIOND_WEB__PORT": str(port)})

    def health() -> bool:
        try:
            with urllib.request.urlopen(f"{base}/api/health", timeout=5) as reply:
                return json.loads(reply.read())["status"] == "ok"
        except OSError:
            return False

    wait_for(health, 120, "the web console to answer", interval=0.2)
    driver = chromium
    driver.get(f"{base}/")

    # the chart: axes (lines in the axis colour, a column and a row) and a swatch for every emotion
    def charted():
        image = canvas_image(driver, CHART_JS)
        if image is None or not near(image, css_to_bgr(EMOTION_CSS["happy"])).any():
            return None
        return [image]

    chart = wait_for(charted, 90, "the chart with results in it", interval=0.5)[0]
    axis = near(chart, AXIS_BGR)
    assert axis.mean(axis=0).max() > 0.5, "no y axis"
    assert axis.mean(axis=1).max() > 0.5, "no x axis"
    legend_band = chart[: chart.shape[0] // 3]
    for emotion, css in EMOTION_CSS.items():
        assert near(legend_band, css_to_bgr(css), 8).sum() >= 50, f"no legend swatch for {emotion}"

    # one camera fills the grid
    tile_width, grid_width = driver.execute_script(WIDTHS_JS)
    assert tile_width >= 0.95 * grid_width, (tile_width, grid_width)

    # the frame's score panels stand apart
    frame = wait_for(lambda: (f := canvas_image(driver, FRAME_JS)) is not None and panels_apart(f) and [f], 60,
                     "a frame with its score panels apart", interval=0.5)[0]
    cv2.imwrite(str(tmp_path / "frame.png"), frame)

    # /api/stats says its per-camera figures came from the daemon's metric files
    with urllib.request.urlopen(f"{base}/api/stats", timeout=10) as reply:
        stats = json.loads(reply.read())
    assert stats["metrics"]["samples"] > 0 and stats["metrics"]["age_s"] >= 0, stats["metrics"]
    driver.save_screenshot(str(tmp_path / "console.png"))
    daemon.stop()
