"""Helpers for the web console tests: a real XPUB the console subscribes to (it sees which topics the console
wants, as the daemon's workers do), the console application under aiohttp's test client, JPEG and overlay
checks, and Debian's Chromium driven by selenium."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import zmq

from emotiond.capture import synthetic
from emotiond.clients.messages import load_messages
from emotiond.core import bus, protocol
from emotiond.core.settings import Settings, load_settings

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FACE_BOX = (200, 140, 160, 160)
LANDMARKS = ((250, 190), (310, 190))  # two keypoints inside FACE_BOX, as a landmark detector gives them


def grace_hopper_jpeg() -> bytes:
    """A real portrait photo (shipped with matplotlib)."""
    import matplotlib.cbook

    return Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).read_bytes()


def scene_frame(index: int) -> np.ndarray:
    """A 640x480 frame of the moving-faces scene: real photos, different at every index."""
    return synthetic.render(synthetic.SceneSpec(faces=1), index)[0]


def face_result(camera: str, seq: int, emotion: str = "happy", track: int | None = 1,
                ended: tuple[int, ...] = (), box: tuple[int, int, int, int] = FACE_BOX) -> protocol.Result:
    scores = {label: 0.01 for label in LABELS}
    scores[emotion] = 0.94
    optional: dict[str, Any] = {}
    if track is not None:
        optional = {"track_id": track, "smoothed_emotion": emotion, "smoothed_confidence": 0.9}
    if box == FACE_BOX:
        optional["landmarks"] = LANDMARKS
    face = protocol.Face(box=box, emotion=emotion, confidence=0.94, scores=scores, **optional)
    now = time.time()
    return protocol.Result(camera=camera, seq=seq, captured_at=now - 0.02, published_at=now, frame_size=(640, 480),
                           faces=(face,), latency_ms={"total": 20.0}, worker="test", model="crafted",
                           extra={"ended_tracks": list(ended)} if ended else {})


class FakeBus:
    """An XPUB bound where the console connects: publishes crafted messages and follows its subscriptions."""

    def __init__(self, endpoint: str):
        self.endpoint = endpoint
        self.context = zmq.Context()
        self.sock = self.context.socket(zmq.XPUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDHWM, 100_000)
        self.sock.bind(endpoint)
        self.tracker = bus.SubscriptionTracker()
        self.seen: list[bytes] = []  # every (un)subscribe notice, in order

    def drain(self) -> None:
        while True:
            try:
                notice = self.sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.seen.append(notice)
            self.tracker.feed(notice)

    def wants(self, topic: bytes) -> bool:
        self.drain()
        return self.tracker.wanted(topic)

    def frame(self, camera: str, seq: int, pixels: np.ndarray) -> None:
        header = protocol.FrameHeader(camera, seq, time.time(), pixels.shape)  # type: ignore[arg-type]
        self.sock.send_multipart(protocol.encode_frame(header, pixels), copy=True)

    def result(self, result: protocol.Result) -> None:
        self.sock.send_multipart(protocol.encode_result(result))

    def status(self, camera: str, state: str, message: str = "") -> None:
        self.sock.send_multipart(protocol.encode_status(protocol.Status(camera, state, message,  # type: ignore
                                                                        time.time(), 0)))

    def raw(self, parts: list[bytes]) -> None:
        self.sock.send_multipart(parts)

    def publish_pair(self, camera: str, seq: int, emotion: str = "happy") -> None:
        """A frame and its result, as a worker publishes them (frame first), if the frame is wanted."""
        if self.wants(protocol.FRAME_PREFIX + camera.encode()):
            self.frame(camera, seq, scene_frame(seq))
        self.result(face_result(camera, seq, emotion))

    def close(self) -> None:
        self.sock.close(linger=0)
        self.context.term()


def web_settings(tmp_path: Path, **web: Any) -> Settings:
    """Settings of a console whose runtime and state (users, sessions, certificate) are the test's own."""
    web.setdefault("users_file", str(tmp_path / "state" / "web-users.json"))
    return load_settings(None, {"bus": {"runtime_dir": str(tmp_path / "rt")}, "web": web})


@contextlib.asynccontextmanager
async def console(settings: Settings, endpoint: str) -> AsyncIterator[Any]:
    """The console application on a real local port, with aiohttp's test client."""
    from aiohttp.test_utils import TestClient, TestServer

    from emotiond.clients.web.server import RUNNER_OPTIONS, build_app

    from support.openapi import check_client_response

    class CheckedClient(TestClient):
        """Every response checked against the console's OpenAPI document as it arrives."""

        async def _request(self, method: str, path: Any, **kwargs: Any) -> Any:
            response = await super()._request(method, path, **kwargs)
            await check_client_response(response)
            return response

    app = build_app(settings, endpoint, load_messages())
    server = TestServer(app, host="127.0.0.1")
    options = {k: v for k, v in RUNNER_OPTIONS.items() if k != "handler_cancellation"}  # the test server sets it
    await server.start_server(**options)
    async with CheckedClient(server) as client:
        yield client


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())


async def until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> Any:
    """Wait in the event loop (the console keeps running meanwhile) until ``predicate()`` is truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def until_async(probe: Callable[[], Awaitable[Any]], timeout: float, what: str, interval: float = 0.05) -> Any:
    """``until`` for a probe that is itself a coroutine (an HTTP request to the console)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await probe()
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def wait_seen(client: Any, bus_: FakeBus, camera: str, seq: int = 0) -> None:
    """Publish results until the console knows the camera (its subscription reaches the XPUB asynchronously)."""
    async def known() -> bool:
        reply = await client.get("/api/cameras")
        return camera in [c["name"] for c in (await reply.json())["cameras"]]

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        bus_.result(face_result(camera, seq))
        if await known():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the console never saw camera {camera}")


def decode_jpeg(data: bytes) -> np.ndarray:
    assert data[:3] == b"\xff\xd8\xff", f"not a JPEG: {data[:16]!r}"
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "JPEG does not decode"
    return image


def outline_distance(image: np.ndarray, box: tuple[int, int, int, int], color: tuple[int, int, int],
                     offset: int = 0) -> float:
    """Mean colour distance to ``color`` along the left and right sides of ``box`` (grown by ``offset``)."""
    x, y, w, h = box
    x0, x1 = max(0, x - offset), min(image.shape[1] - 1, x + w - 1 + offset)
    rows = np.arange(max(0, y - offset) + 4, min(image.shape[0], y + h + offset) - 4)
    pixels = np.concatenate([image[rows, x0], image[rows, x1]]).astype(float)
    return float(np.linalg.norm(pixels - np.array(color, float), axis=1).mean())


def box_drawn(image: np.ndarray, box: tuple[int, int, int, int], color: tuple[int, int, int]) -> bool:
    """An overlay box of ``color`` on ``box``: its sides are that colour (within JPEG's shift), a few pixels
    outside they are not."""
    on, beside = outline_distance(image, box, color), outline_distance(image, box, color, offset=6)
    return on < 70 and beside > 2 * on


def dots_drawn(image: np.ndarray, points: tuple[tuple[int, int], ...], color: tuple[int, int, int]) -> bool:
    """Landmark dots of ``color`` at ``points`` (3x3 pixels around each centre)."""
    for x, y in points:
        patch = image[y - 1:y + 2, x - 1:x + 2].reshape(-1, 3).astype(float)
        if np.linalg.norm(patch - np.array(color, float), axis=1).mean() > 70:
            return False
    return True


def split_mjpeg(buffer: bytes) -> tuple[list[bytes], bytes]:
    """Complete JPEG parts of a multipart/x-mixed-replace body (boundary ``frame``), and the unread rest."""
    parts = []
    while True:
        start = buffer.find(b"--frame\r\n")
        if start < 0:
            return parts, buffer
        header_end = buffer.find(b"\r\n\r\n", start)
        if header_end < 0:
            return parts, buffer[start:]
        headers = buffer[start:header_end].decode("latin-1").split("\r\n")
        length = next(int(h.split(":", 1)[1]) for h in headers if h.lower().startswith("content-length:"))
        body_start = header_end + 4
        if len(buffer) < body_start + length + 2:
            return parts, buffer[start:]
        parts.append(buffer[body_start:body_start + length])
        buffer = buffer[body_start + length + 2:]


@contextlib.contextmanager
def web_process(env: dict[str, str], log_path: Path) -> Iterator[str]:
    """``emotiond web`` as its own process on a free loopback port (plain HTTP, no users), with ``env`` (its runtime
    and state folders); yields its base URL once ``/api/health`` answers, and stops it afterwards."""
    import json
    import subprocess
    import urllib.request

    from support.daemon import EMOTIOND, REPO, free_port, kill_leftovers, wait_for

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with log_path.open("w") as log:
        process = subprocess.Popen([*EMOTIOND, "web", "--port", str(port)], cwd=REPO, env=env, stdout=log,
                                   stderr=subprocess.STDOUT)

    def up() -> bool:
        assert process.poll() is None, log_path.read_text()[-3000:]
        try:
            with urllib.request.urlopen(f"{base}/api/health", timeout=5) as response:
                return json.loads(response.read())["status"] == "ok"
        except OSError:
            return False

    try:
        wait_for(up, 60, "emotiond web to answer", interval=0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(15)
        finally:
            kill_leftovers([process])


# ---------------------------------------------------------------- Chromium

@pytest.fixture
def web_certificate(tmp_path: Path) -> Path:
    """A state folder (for XDG_STATE_HOME) holding the console's self-signed certificate, made before the console
    starts, so ``chromium`` can trust exactly that certificate; the console finds it there and keeps it."""
    from emotiond.clients.web.tls import make_self_signed

    state = tmp_path / "web-state"
    make_self_signed(state / "emotiond", "127.0.0.1")
    return state


def spki_hash(cert_path: Path) -> str:
    """base64(SHA-256(SubjectPublicKeyInfo)): how Chromium's --ignore-certificate-errors-spki-list names a key."""
    import base64
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    key = x509.load_pem_x509_certificate(cert_path.read_bytes()).public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@pytest.fixture
def chromium(tmp_path: Path, request: pytest.FixtureRequest):
    """Debian's headless Chromium under selenium, with its own profile and no background network traffic. A test
    that also uses ``web_certificate`` gets a browser that trusts that certificate (and no other)."""
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.fail("chromium and chromedriver are required (Debian packages chromium, chromium-driver; "
                    "`make apt` installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--disable-extensions", "--disable-default-apps", "--mute-audio",
                 "--window-size=1400,1000", f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    if "web_certificate" in request.fixturenames:
        cert = request.getfixturevalue("web_certificate") / "emotiond" / "web-cert.pem"
        options.add_argument(f"--ignore-certificate-errors-spki-list={spki_hash(cert)}")
    service = Service(CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
