"""Helpers for the client tests: a virtual X display and screenshots, crafted results on a real
publisher, log-file readers and the Node.js example's dependencies."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import zmq

from emotiond.clients.overlay import EMOTION_COLORS, draw_banner
from emotiond.clients.view.viewer import WAITING_TEXT, draw_paused
from emotiond.core import protocol
from emotiond.workers.tracking import iou

from support.daemon import REPO
from support.tools import require_tool

NODE_EXAMPLE = REPO / "examples" / "node"


# ---------------------------------------------------------------- X display

@dataclass
class Display:
    name: str  # ":N"
    process: subprocess.Popen

    def env(self, base: dict[str, str]) -> dict[str, str]:
        return {**base, "DISPLAY": self.name, "QT_QPA_PLATFORM": "xcb"}

    def screenshot(self) -> np.ndarray:
        """The whole screen as a BGR array, via xwd."""
        raw = subprocess.run(["xwd", "-root", "-silent", "-display", self.name], check=True, capture_output=True,
                             timeout=20).stdout
        return parse_xwd(raw)

    def windows(self, title: str) -> list[str]:
        found = subprocess.run(["xdotool", "search", "--name", title], capture_output=True, text=True,
                               env={**os.environ, "DISPLAY": self.name}, timeout=10)
        return found.stdout.split()

    def geometry(self, window: str) -> tuple[int, int, int, int]:
        """x, y, width, height of a window."""
        out = subprocess.run(["xdotool", "getwindowgeometry", "--shell", window], capture_output=True, text=True,
                             env={**os.environ, "DISPLAY": self.name}, check=True, timeout=10).stdout
        values = dict(line.split("=", 1) for line in out.split() if "=" in line)
        return int(values["X"]), int(values["Y"]), int(values["WIDTH"]), int(values["HEIGHT"])

    def expose(self, window: str) -> None:
        """Unmap and map a window. With no window manager, Qt can miss a window's first expose event and then
        paints nothing until the next one; a desktop's window manager always sends it."""
        for action in ("windowunmap", "windowmap"):
            subprocess.run(["xdotool", action, "--sync", window], check=True, timeout=10,
                           env={**os.environ, "DISPLAY": self.name})

    def key(self, window: str, key: str) -> None:
        """Send one key press. It returns once the X server has the key, not once the window handled it, and
        OpenCV's Qt backend holds one pending key: a key sent before the window took the previous one replaces
        it. So wait for each key's visible effect before sending the next."""
        subprocess.run(["xdotool", "windowfocus", "--sync", window, "key", key], check=True, timeout=10,
                       env={**os.environ, "DISPLAY": self.name})


def parse_xwd(data: bytes) -> np.ndarray:
    """Decode an XWD (X Window Dump) of a TrueColor screen into a BGR array.

    Layout: a header of 25 big-endian 32-bit fields (its size in the first), the window name, the
    colour map (12 bytes per entry), then rows of ``bytes_per_line`` bytes.
    """
    fields = struct.unpack(">25I", data[:100])
    header_size, width, height = fields[0], fields[4], fields[5]
    byte_order, bits_per_pixel, bytes_per_line = fields[7], fields[11], fields[12]
    masks, colors = fields[14:17], fields[19]
    pixel_bytes = bits_per_pixel // 8
    offset = header_size + colors * 12
    rows = np.frombuffer(data, np.uint8, count=height * bytes_per_line, offset=offset).reshape(height, bytes_per_line)
    pixels = rows[:, :width * pixel_bytes].reshape(height, width, pixel_bytes).astype(np.uint32)
    order = range(pixel_bytes) if byte_order == 0 else range(pixel_bytes - 1, -1, -1)
    value = np.zeros((height, width), np.uint32)
    for shift, index in enumerate(order):
        value |= pixels[:, :, index] << (8 * shift)

    def channel(mask: int) -> np.ndarray:
        return ((value & mask) >> ((mask & -mask).bit_length() - 1)).astype(np.uint8)

    red, green, blue = (channel(m) for m in masks)
    return np.dstack([blue, green, red])


@pytest.fixture
def xvfb() -> Iterator[Display]:
    require_tool("Xvfb", "xvfb", "the viewer tests' virtual display")
    require_tool("xwd", "x11-apps", "the viewer tests' screenshots")
    require_tool("xdotool", "xdotool", "the viewer tests' key presses")
    # -displayfd: Xvfb picks a free display itself and writes its number once it accepts connections, so there
    # is no race with other servers or with a half-started one. -noreset: by default Xvfb resets whenever its
    # last client leaves (each xdotool call is one) and refuses connections meanwhile.
    read_end, write_end = os.pipe()
    process = subprocess.Popen(["Xvfb", "-displayfd", str(write_end), "-noreset", "-screen", "0", "1280x720x24",
                                "-nolisten", "tcp"], pass_fds=(write_end,), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    os.close(write_end)
    with os.fdopen(read_end) as announced:
        number = announced.readline().strip()
    if not number.isdigit():
        process.kill()
        pytest.fail("Xvfb did not start")
    yield Display(f":{number}", process)
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


# ---------------------------------------------------------------- overlay pixels

def palette_mask(image: np.ndarray) -> np.ndarray:
    """True where a pixel has exactly one of the overlay's emotion colours."""
    mask = np.zeros(image.shape[:2], bool)
    for color in EMOTION_COLORS.values():
        mask |= np.all(image == np.array(color, np.uint8), axis=2)
    return mask


def _longest_run(column: np.ndarray) -> tuple[int, int]:
    """(start, length) of the longest run of True in a 1-D mask."""
    padded = np.concatenate([[False], column, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    if not len(edges):
        return 0, 0
    starts, ends = edges[::2], edges[1::2]
    best = int(np.argmax(ends - starts))
    return int(starts[best]), int(ends[best] - starts[best])


def drawn_boxes(mask: np.ndarray, min_side: int = 30) -> list[tuple[int, int, int, int]]:
    """Rectangles drawn in overlay colour, found from their vertical edges (x, y, w, h).

    A box's left and right sides are the only long vertical runs of one colour: labels and score bars
    are short. Edge columns with the same run start and length are paired into a box.
    """
    edges: list[tuple[int, int, int]] = []  # x, run start, run length
    for x in range(mask.shape[1]):
        start, length = _longest_run(mask[:, x])
        if length >= min_side:
            if edges and x - edges[-1][0] <= 2 and abs(edges[-1][1] - start) <= 2:
                continue  # the same (thick) edge
            edges.append((x, start, length))
    boxes = []
    used: set[int] = set()
    for i, (x, start, length) in enumerate(edges):
        if i in used:
            continue
        for j in range(i + 1, len(edges)):
            other = edges[j]
            if j not in used and abs(other[1] - start) <= 3 and abs(other[2] - length) <= 3:
                used.update((i, j))
                boxes.append((x, start, other[0] - x + 2, length))
                break
    return boxes


def best_iou(mask: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """How well the best overlay rectangle on screen matches ``box``."""
    return max((iou(found, box) for found in drawn_boxes(mask)), default=0.0)


def drawn_on(image: np.ndarray, draw: Callable[[np.ndarray], None]) -> bool:
    """True when what ``draw`` paints (in place) is on ``image``: every pixel it sets, whatever is under it, has
    its value (found by drawing on a black and on a white canvas)."""
    on_black, on_white = np.zeros_like(image), np.full_like(image, 255)
    draw(on_black)
    draw(on_white)
    painted = np.all(on_black == on_white, axis=2)
    return bool(np.all(image[painted] == on_black[painted], axis=1).mean() > 0.99)


def waiting_banner_shown(image: np.ndarray) -> bool:
    """True when the viewer's "waiting for daemon" banner is on ``image``."""
    return drawn_on(image, lambda canvas: draw_banner(canvas, WAITING_TEXT))


def paused_shown(image: np.ndarray) -> bool:
    """True when the viewer's "paused" badge is on ``image``: a paused window otherwise looks live."""
    return drawn_on(image, draw_paused)


# ---------------------------------------------------------------- crafted results

def crafted_result(camera: str, seq: int, emotion: str = "happy") -> protocol.Result:
    scores = {label: 0.01 for label in ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")}
    scores[emotion] = 0.94
    face = protocol.Face(box=(10, 20, 100, 100), emotion=emotion, confidence=0.94, scores=scores)
    now = time.time()
    return protocol.Result(camera=camera, seq=seq, captured_at=now - 0.02, published_at=now, frame_size=(640, 480),
                           faces=(face,), latency_ms={"total": 20.0}, worker="test", model="crafted")


class CraftedPublisher:
    """An XPUB bound where a client connects; waits until the client's subscription arrives."""

    def __init__(self, endpoint: str):
        self.context = zmq.Context()
        self.sock = self.context.socket(zmq.XPUB)
        self.sock.setsockopt(zmq.LINGER, 1000)
        self.sock.setsockopt(zmq.SNDHWM, 100_000)
        self.sock.bind(endpoint)

    def wait_subscriber(self, prefix: bytes = protocol.RESULT_PREFIX, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.sock.poll(100) and self.sock.recv().startswith(b"\x01" + prefix):
                return
        raise AssertionError(f"no subscription to {prefix!r} within {timeout}s")

    def publish(self, result: protocol.Result) -> None:
        self.sock.send_multipart(protocol.encode_result(result))

    def close(self) -> None:
        self.sock.close()
        self.context.term()


# ---------------------------------------------------------------- log files

def jsonl_records(folder: Path) -> list[dict]:
    """Every line of every .jsonl file, asserting each one is complete JSON."""
    out = []
    for path in sorted(folder.glob("*.jsonl")):
        text = path.read_text()
        assert not text or text.endswith("\n"), f"{path} ends in a partial line"
        out += [json.loads(line) for line in text.splitlines()]
    return out


# ---------------------------------------------------------------- node

@pytest.fixture(scope="session")
def node_example() -> Path:
    """examples/node with its npm dependencies installed (``npm ci`` from the lock file if missing)."""
    require_tool("node", "nodejs", "the Node.js subscriber example")
    require_tool("npm", "npm", "installing the Node.js example's packages")
    if not (NODE_EXAMPLE / "node_modules" / "zeromq" / "package.json").is_file():
        done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_EXAMPLE, capture_output=True,
                              text=True, timeout=240)
        assert done.returncode == 0, f"npm ci failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return NODE_EXAMPLE
