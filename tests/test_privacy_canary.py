"""The canary: no face leaves emotiond when ``[privacy] faces = "solid"``.

Every face of a video carries the same high-entropy patch (random colour cells, found nowhere else). One daemon
runs on it with the web console, the MQTT bridge (snapshots on, a real Mosquitto), the history writer and the
logger, and every output is captured: the bus (results and frames), the console's MJPEG stream, WebSocket and
latest.jpg, the MQTT messages, ``analyze --out``'s video and results, the logger's files, the history database's
bytes, /metrics and the daemon's log. In every image the patch is found nowhere (normalised correlation under
``NOT_FOUND``) and Haar at a low threshold (3 neighbours, the daemon asks 5) finds no face; text and database bytes
hold neither the patch's pixels nor an image that shows it.

Positive control: the same outputs with ``faces = "show"`` carry the patch (above ``FOUND``) and Haar finds the
faces, so a path that lost its images, or a detector blind to these faces, cannot pass for redaction. With
redaction switched off in Pipeline.image, the solid run fails on every image path (bus frames, MJPEG, WebSocket,
latest.jpg, MQTT snapshots, analyze --out).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest
import zmq

from emotiond.capture import synthetic
from emotiond.clients.subscribe import Subscription
from emotiond.core import protocol

from support.daemon import EMOTIOND, REPO, child_env, free_port, kill_leftovers, scrape, wait_for
from support.mqtt import Broker, Watcher
from support.web import split_mjpeg

NOT_FOUND = 0.5  # correlation of the patch with the scene without it is about 0.3
FOUND = 0.7  # with it, after MPEG-4 and JPEG, at least 0.8
CELL, CELLS = 4, 6  # the patch: 6 x 6 cells of 4 px, each a random colour
FRAMES = 90
CAMERA = "lobby"
IMAGES_PER_PATH = 3


def canary_patch() -> np.ndarray:
    cells = np.random.default_rng(20261208).integers(0, 256, (CELLS, CELLS, 3))
    return np.kron(cells, np.ones((CELL, CELL, 1))).astype(np.uint8)


PATCH = canary_patch()


def write_canary_video(path: Path) -> Path:
    """The two-face scene with the patch on each face's forehead (Haar still finds both faces)."""
    spec = synthetic.SceneSpec(faces=2, frames=FRAMES)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), spec.fps, (spec.width, spec.height))
    try:
        for frame, boxes in synthetic.frames(spec):
            for x, y, w, _h in boxes:
                left, top = x + w // 2 - PATCH.shape[1] // 2, y + 2
                frame[top:top + PATCH.shape[0], left:left + PATCH.shape[1]] = PATCH
            writer.write(frame)
    finally:
        writer.release()
    return path


# ---------------------------------------------------------------- looking for the canary

def patch_score(image: np.ndarray) -> float:
    """How well the patch matches anywhere in an image (1.0: a perfect copy)."""
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[0] < PATCH.shape[0] or image.shape[1] < PATCH.shape[1]:
        return 0.0
    return float(cv2.matchTemplate(image, PATCH, cv2.TM_CCOEFF_NORMED).max())


_CASCADE = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")


def faces_seen(image: np.ndarray) -> int:
    """Faces Haar finds at 3 neighbours, leaving out hits a fifth or more black: at 2 neighbours a solid mask's
    lower edge over a dark collar drew a false alarm now and then, and a face that got through has no black."""
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    hits = _CASCADE.detectMultiScale(gray, scaleFactor=1.05, minNeighbors=3, minSize=(40, 40))
    return sum(1 for x, y, w, h in hits if (gray[y:y + h, x:x + w] <= 16).mean() < 0.2)


def embedded_images(blob: bytes, limit: int = 50) -> list[np.ndarray]:
    """JPEG and PNG images inside any bytes (a database page, a log line's base64 is decoded by the caller)."""
    images = []
    for signature in (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n"):
        start = blob.find(signature)
        while start >= 0 and len(images) < limit:
            image = cv2.imdecode(np.frombuffer(blob[start:start + (16 << 20)], np.uint8), cv2.IMREAD_COLOR)
            if image is not None:
                images.append(image)
            start = blob.find(signature, start + 1)
    return images


def raw_patch_in(blob: bytes) -> bool:
    """The patch's pixels as raw bytes (any of its rows, BGR or RGB): what a frame dumped whole would hold."""
    rows = [PATCH[row].tobytes() for row in range(0, PATCH.shape[0], CELL)]
    rows += [PATCH[row, :, ::-1].tobytes() for row in range(0, PATCH.shape[0], CELL)]
    return any(row in blob for row in rows)


# ---------------------------------------------------------------- one daemon, every output

@dataclass
class Outputs:
    images: dict[str, list[np.ndarray]] = field(default_factory=dict)  # path name -> images captured there
    blobs: dict[str, bytes] = field(default_factory=dict)  # text and database outputs, as bytes
    results: list[protocol.Result] = field(default_factory=list)


def read_mjpeg(url: str, count: int) -> list[np.ndarray]:
    images: list[np.ndarray] = []
    buffer = b""
    with urllib.request.urlopen(url, timeout=30) as response:
        while len(images) < count:
            chunk = response.read1(1 << 16)
            assert chunk, "the MJPEG stream ended"
            parts, buffer = split_mjpeg(buffer + chunk)
            images += [cv2.imdecode(np.frombuffer(part, np.uint8), cv2.IMREAD_COLOR) for part in parts]
    return images[:count]


def read_websocket(base: str, count: int) -> list[np.ndarray]:
    import aiohttp

    async def frames() -> list[np.ndarray]:
        images: list[np.ndarray] = []
        async with aiohttp.ClientSession() as session, session.ws_connect(f"{base}/ws") as ws:
            await ws.send_str(json.dumps({"watch": [CAMERA], "fps": 30}))
            deadline = time.monotonic() + 60
            while len(images) < count:
                assert time.monotonic() < deadline, "no frames on the WebSocket"
                message = await ws.receive(timeout=30)
                if message.type == aiohttp.WSMsgType.BINARY:
                    name_length = message.data[0]
                    jpeg = message.data[1 + name_length + 8:]
                    images.append(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR))
        return images

    return asyncio.run(frames())


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()


def video_frames(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(frame)


def files_under(folder: Path) -> Iterator[Path]:
    return (path for path in sorted(folder.rglob("*")) if path.is_file())


def collect(mode: str, folder: Path, video: Path, broker: Broker) -> Outputs:
    """Run everything with ``[privacy] faces = mode`` and capture every output."""
    folder.mkdir()
    runtime, web_port, metrics_port = folder / "run", free_port(), free_port()
    env = child_env(runtime, EMOTIOND_PRIVACY__FACES=mode, EMOTIOND_WEB__ENABLED="true",
                    EMOTIOND_WEB__PORT=str(web_port), EMOTIOND_MQTT__ENABLED="true", EMOTIOND_MQTT__URL=broker.url,
                    EMOTIOND_MQTT__SNAPSHOTS="true", EMOTIOND_MQTT__TOPIC_PREFIX=f"canary-{mode}")
    out = Outputs()
    analyzed = folder / "analyzed"
    analyze = subprocess.Popen([*EMOTIOND, "analyze", str(video), "--out", str(analyzed)], cwd=REPO, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    daemon_log = folder / "daemon.log"
    mqtt = Watcher(broker.port, (f"canary-{mode}/#",))
    with daemon_log.open("w") as log:
        daemon = subprocess.Popen([*EMOTIOND, "run", "--source", f"{CAMERA}={video}", "--realtime", "--loop",
                                   "--workers", "1", "--metrics-port", str(metrics_port)], cwd=REPO, env=env,
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    logger = subprocess.Popen([*EMOTIOND, "log", "--out", str(folder / "logs")], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{web_port}"
    try:
        with zmq.Context() as ctx, Subscription(f"ipc://{runtime / 'results'}.sock", kinds=("result", "frame"),
                                                ctx=ctx) as bus:
            frames: list[np.ndarray] = []
            deadline = time.monotonic() + 120
            while len(frames) < 10 or not any(r.faces for r in out.results):
                assert daemon.poll() is None, daemon_log.read_text()[-3000:]
                assert time.monotonic() < deadline, f"no faces on the bus:\n{daemon_log.read_text()[-3000:]}"
                for message in bus.receive(200):
                    if isinstance(message, protocol.Frame):
                        frames.append(message.pixels)
                    elif isinstance(message, protocol.Result):
                        out.results.append(message)
            out.images["bus frames"] = frames
        wait_for(lambda: _answers(f"{base}/api/health"), 60, "the console")
        out.images["MJPEG"] = read_mjpeg(f"{base}/api/cameras/{CAMERA}/stream", IMAGES_PER_PATH)
        out.images["WebSocket"] = read_websocket(base, IMAGES_PER_PATH)
        latest = get(f"{base}/api/cameras/{CAMERA}/latest.jpg")
        out.images["latest.jpg"] = [cv2.imdecode(np.frombuffer(latest, np.uint8), cv2.IMREAD_COLOR)]
        snapshot_topic = f"canary-{mode}/{CAMERA}/snapshot"
        wait_for(lambda: mqtt.on(snapshot_topic), 60, "an MQTT snapshot")
        out.images["MQTT snapshots"] = [cv2.imdecode(np.frombuffer(m.payload, np.uint8), cv2.IMREAD_COLOR)
                                        for m in mqtt.on(snapshot_topic)]
        out.blobs["MQTT messages"] = b"\n".join(m.payload for m in list(mqtt.messages) if m.topic != snapshot_topic)
        out.blobs["/metrics"] = scrape(metrics_port).encode()
        out.blobs["/api/events"] = get(f"{base}/api/events")
        assert analyze.wait(180) == 0, analyze.stderr.read().decode()[-3000:]
    finally:
        mqtt.close()
        for process in (logger, daemon):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in (logger, daemon):
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL) if process is daemon else process.kill()
        kill_leftovers([analyze, logger, daemon])
    out.images["analyze --out"] = [frame for path in files_under(analyzed) if path.suffix == ".mp4"
                                   for frame in video_frames(path)]
    for path in files_under(analyzed):
        if path.suffix != ".mp4":
            out.blobs[f"analyze --out {path.name}"] = path.read_bytes()
    for path in files_under(folder / "logs"):
        out.blobs[f"log file {path.name}"] = path.read_bytes()
    for path in files_under(runtime / "state"):
        out.blobs[f"state {path.name}"] = path.read_bytes()
    out.blobs["daemon log"] = daemon_log.read_bytes()
    return out


def _answers(url: str) -> bool:
    try:
        return json.loads(get(url))["status"] == "ok"
    except OSError:
        return False


@pytest.fixture(scope="module")
def canary_runs(tmp_path_factory, default_model) -> dict[str, Outputs]:
    folder = tmp_path_factory.mktemp("canary")
    video = write_canary_video(folder / "canary.mp4")
    broker = Broker(folder / "broker", free_port())
    broker.folder.mkdir()
    broker.start()
    try:
        return {mode: collect(mode, folder / mode, video, broker) for mode in ("solid", "show")}
    finally:
        broker.stop()


# ---------------------------------------------------------------- the checks

def test_with_faces_solid_the_patch_and_the_faces_are_nowhere(canary_runs):
    solid = canary_runs["solid"]
    assert sum(len(r.faces) for r in solid.results) >= 2, "the faces were detected (only images are redacted)"
    expected = {"bus frames", "MJPEG", "WebSocket", "latest.jpg", "MQTT snapshots", "analyze --out"}
    assert expected <= {name for name, images in solid.images.items() if images}, solid.images.keys()
    leaks = {}
    for name, images in solid.images.items():
        scores = [patch_score(image) for image in images]
        faces = [faces_seen(image) for image in images]
        if max(scores) >= NOT_FOUND or any(faces):
            leaks[name] = (round(max(scores), 3), faces)
    for name, blob in solid.blobs.items():
        inside = embedded_images(blob)
        if raw_patch_in(blob) or any(patch_score(image) >= NOT_FOUND or faces_seen(image) for image in inside):
            leaks[name] = "the patch's bytes or an image of a face"
    assert leaks == {}, f"the canary got out: {leaks}"
    assert {"daemon log", "/metrics", "/api/events", "MQTT messages"} <= set(solid.blobs)
    assert any(name.startswith("state history") for name in solid.blobs), sorted(solid.blobs)
    assert any(name.startswith("log file") for name in solid.blobs), sorted(solid.blobs)


def test_with_faces_show_the_same_outputs_carry_the_patch(canary_runs):
    """Positive control: every image path that passed above would have shown the canary."""
    show = canary_runs["show"]
    for name, images in show.images.items():
        assert images, name
        assert max(patch_score(image) for image in images) >= FOUND, name
        assert sum(faces_seen(image) for image in images) >= 1, name
