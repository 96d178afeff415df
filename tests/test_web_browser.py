"""The web console in a real browser: ``emotiond run`` on the demo video with ``[web] enabled`` over HTTPS (its
self-signed certificate, which the browser trusts by its key), Debian's headless Chromium driven by selenium, and
the page checked for moving video, boxes where the results say, live change events, source status, enlarging a
camera and a photo upload."""

from __future__ import annotations

import base64
import functools
import json
import ssl
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np

from emotiond.clients.overlay import EMOTION_COLORS

from support.daemon import child_roles, free_port, metric_value, wait_for
from support.web import box_drawn, chromium, grace_hopper_jpeg, web_certificate  # noqa: F401

FRAME_JS = """
const done = arguments[arguments.length - 1];
const canvas = document.querySelector('.tile[data-camera="cam0"] canvas.video');
if (!canvas || !canvas.dataset.seq) { done(null); return; }
done([canvas.dataset.seq, canvas.toDataURL("image/png")]);
"""


TILE_HEIGHT_JS = """
const frame = document.querySelector('.tile[data-camera="cam0"] .frame');
return frame.clientHeight * (window.devicePixelRatio || 1);
"""


def page_frame(driver) -> tuple[int, np.ndarray] | None:
    """The frame the page shows for cam0, at its full resolution, with its seq."""
    found = driver.execute_async_script(FRAME_JS)
    if not found:
        return None
    png = base64.b64decode(found[1].split(",", 1)[1])
    return int(found[0]), cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)


def get_https_json(url: str, context: ssl.SSLContext | None = None) -> dict:
    with urllib.request.urlopen(url, timeout=10, context=context) as response:
        return json.loads(response.read())


def test_console_in_chromium(start_daemon, default_model, watch, web_certificate, chromium, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By

    port = free_port()
    base = f"https://127.0.0.1:{port}"
    daemon = start_daemon("--source", "demo", "--realtime", "--loop", workers=1,
                          env={"EMOTIOND_WEB__ENABLED": "true", "EMOTIOND_WEB__PORT": str(port),
                               "EMOTIOND_WEB__TLS": "self-signed", "XDG_STATE_HOME": str(web_certificate)})
    trusted = ssl.create_default_context(cafile=str(web_certificate / "emotiond" / "web-cert.pem"))
    get_json = functools.partial(get_https_json, context=trusted)
    bus = watch(daemon.results_endpoint, kinds=("result",))
    wait_for(lambda: bus.received, 90, "the daemon's first result")

    def health() -> bool:
        try:
            return get_json(f"{base}/api/health")["status"] == "ok"
        except OSError:
            return False

    wait_for(health, 60, "the web console to answer", interval=0.2)
    web_pids = [pid for pid, role in child_roles(daemon).items() if role == "web"]
    assert len(web_pids) == 1, "emotiond run started one web process"

    driver = chromium
    driver.get(f"{base}/")
    wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, '.tile[data-camera="cam0"]'), 30, "the cam0 tile")
    assert driver.execute_script("return location.protocol + window.isSecureContext") == "https:true"
    assert "SHA-256 fingerprint" in daemon.log() and "web console on https://" in daemon.log()

    # the video moves: two frames with different seq and different pixels
    first = wait_for(lambda: page_frame(driver), 30, "a frame on the page", interval=0.2)
    second = wait_for(lambda: (f := page_frame(driver)) and f[0] > first[0] and f, 30, "a newer frame",
                      interval=0.2)
    # ...at the height the tile shows them at, rounded to 40 px, never above the demo's own 480 (one camera fills
    # the grid, so its tile is taller than that)
    tile_height = driver.execute_script(TILE_HEIGHT_JS)
    height = min(480, round(tile_height / 40) * 40)
    assert height >= 120, tile_height
    assert first[1].shape == second[1].shape == (height, round(640 * height / 480), 3)
    assert np.abs(first[1].astype(int) - second[1].astype(int)).mean() > 1.0, "the frames do not change"

    # boxes are drawn where that frame's result says, in its emotion's colour
    def boxed_frame():
        shown = page_frame(driver)
        if shown is None:
            return None
        seq, image = shown
        events = get_json(f"{base}/api/events?camera=cam0&topic=result&limit=2000")["events"]
        result = next((e["payload"] for e in events if e["payload"]["seq"] == seq), None)
        if result is None or not result["faces"]:
            return None
        return seq, image, result

    seq, image, result = wait_for(boxed_frame, 30, "a shown frame whose result has faces", interval=0.2)
    cv2.imwrite(str(tmp_path / "frame.png"), image)
    scale = image.shape[0] / 480
    for face in result["faces"]:
        box = tuple(round(v * scale) for v in face["box"])
        assert box_drawn(image, box, EMOTION_COLORS[face["emotion"]]), (seq, face, scale)  # boxes: the raw label

    # /api/stats gives the figures /metrics gives (read between two scrapes, they fall between them)
    before = daemon.metrics_text()
    time.sleep(1.1)  # /api/stats reads the daemon's metric files at most once a second
    stats = get_json(f"{base}/api/stats")["cameras"]["cam0"]
    after = daemon.metrics_text()
    for metric, key in (("emotiond_frames_captured_total", "frames_captured"),
                        ("emotiond_frames_processed_total", "frames_processed"),
                        ("emotiond_faces_detected_total", "faces_detected")):
        low, high = metric_value(before, metric, camera="cam0"), metric_value(after, metric, camera="cam0")
        assert 0 < low <= stats[key] <= high, (key, low, stats[key], high)
    assert stats["source_up"] == 1 and stats["latency_ms"]["p50"] is not None and stats["fps"] > 0

    # a live change event reaches the list; the source shows as up
    wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "#events li.live"), 60, "a live change event",
             interval=0.3)
    event_text = driver.find_element(By.CSS_SELECTOR, "#events li.live").text
    assert "cam0" in event_text and any(k in event_text for k in ("appeared", "changed", "disappeared"))
    badge = driver.find_element(By.CSS_SELECTOR, '.tile[data-camera="cam0"] .status')
    wait_for(lambda: badge.text == "up", 10, "the status badge to say up")
    wait_for(lambda: driver.find_element(By.CSS_SELECTOR, '.tile[data-camera="cam0"] .message').text, 10,
             "the dominant emotion's message")
    time.sleep(2.5)  # the chart draws once a second; let it gather a few buckets for the screenshot
    driver.save_screenshot(str(tmp_path / "grid.png"))

    # a click enlarges the camera, and its frames come at the frame's full size (the tile is now taller; a lone
    # camera already spans the grid, so it grows in height)
    tile = driver.find_element(By.CSS_SELECTOR, '.tile[data-camera="cam0"]')
    before = tile.size["height"]
    tile.click()
    assert "enlarged" in tile.get_attribute("class") and tile.size["height"] > before
    assert driver.execute_script(TILE_HEIGHT_JS) > 480
    wait_for(lambda: (f := page_frame(driver)) and f[1].shape == (480, 640, 3), 15, "full-size frames",
             interval=0.2)
    tile.click()
    wait_for(lambda: (f := page_frame(driver)) and f[1].shape[0] == height, 15, "tile-size frames again",
             interval=0.2)

    # upload a photo: its emotion, message and annotated image appear
    photo = tmp_path / "grace_hopper.jpg"
    photo.write_bytes(grace_hopper_jpeg())
    driver.find_element(By.ID, "upload-file").send_keys(str(photo))
    driver.find_element(By.ID, "upload-button").click()
    emotion = wait_for(lambda: driver.find_element(By.ID, "upload-emotion").text, 60, "the upload's emotion",
                       interval=0.3)
    labels = set(result["faces"][0]["scores"])
    assert emotion in labels, emotion
    assert driver.find_element(By.ID, "upload-faces").text == "1 face"
    assert driver.find_element(By.ID, "upload-message").text
    assert driver.execute_script("return document.getElementById('upload-image').naturalWidth") == 512
    driver.execute_script("document.getElementById('upload-panel').scrollIntoView()")
    driver.save_screenshot(str(tmp_path / "upload.png"))

    # a browser without ImageDecoder (WebCodecs) decodes through createImageBitmap: the video still moves
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": "delete window.ImageDecoder;"})
    driver.get(f"{base}/")
    assert driver.execute_script("return typeof ImageDecoder") == "undefined"
    first = wait_for(lambda: page_frame(driver), 30, "a frame without ImageDecoder", interval=0.2)
    wait_for(lambda: (f := page_frame(driver)) and f[0] > first[0], 30, "a newer frame without ImageDecoder",
             interval=0.2)

    # the page's socket watched the camera; once the page is gone, nobody does
    assert get_json(f"{base}/api/stats")["web"]["frame_subscriptions"] == ["cam0"]
    driver.get("about:blank")
    wait_for(lambda: get_json(f"{base}/api/stats")["web"]["frame_subscriptions"] == [], 30,
             "frames to be unsubscribed when the page closes")
    assert daemon.stop() == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in web_pids), "the web process outlived the daemon"
