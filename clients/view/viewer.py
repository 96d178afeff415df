"""``emotiond view``: a live OpenCV window of one camera with faces, scores, a HUD and a message line.

``ViewerModel`` turns bus messages into the image to show and knows nothing of windows, so its rules
(join by (camera, seq), never go back in time, "waiting for daemon" after a silence) are testable without
a display. ``run_viewer`` is the thin GUI loop around it: window, keys, snapshots.
"""

from __future__ import annotations

import collections
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np

from emotiond.clients.join import FrameResultJoiner, Pair, SeqCounter
from emotiond.clients.messages import MessagePicker, dominant_emotion
from emotiond.clients.overlay import FONT, PANEL_BG, TEXT_COLOR, Hud, blank_canvas, draw_overlay
from emotiond.clients.view.feed import LiveFeed
from emotiond.core import protocol
from emotiond.core.errors import UsageError

log = logging.getLogger(__name__)
WINDOW_TITLE = "emotiond view"
WAITING_TEXT = "waiting for daemon"
PAUSED_TEXT = "paused"
KEY_ESC = 27


@dataclass
class ViewerModel:
    """What to display, from the messages received so far."""

    picker: MessagePicker
    camera: str | None = None
    waiting_after: float = 2.0
    joiner: FrameResultJoiner = field(default_factory=FrameResultJoiner)
    seqs: SeqCounter = field(default_factory=SeqCounter)
    current: Pair | None = None
    last_pair_at: float | None = None
    status_note: str = ""
    _shown: collections.deque = field(default_factory=lambda: collections.deque(maxlen=60))
    _latency_ms: float | None = None
    _waiting: bool = True

    def feed(self, message: protocol.Message, now: float) -> bool:
        """Take one message; True when there is a new pair to display."""
        if isinstance(message, protocol.Status):
            if self.camera in (None, message.camera) and message.state != "up":
                self.status_note = f"{message.camera} {message.state}"
            return False
        if isinstance(message, protocol.Frame):
            if self.camera is None:
                self.camera = message.header.camera
            pair = self.joiner.add_frame(message)
        elif isinstance(message, protocol.Result):
            pair = self.joiner.add_result(message)
        else:
            return False
        if pair is None or pair.result.camera != self.camera:
            return False
        if not self.seqs.see(pair.result.camera, pair.result.seq):
            return False  # older than what is on screen
        self.current = pair
        self.last_pair_at = now
        self.status_note = ""
        if self._waiting:
            log.info("showing camera %s from seq %d", pair.result.camera, pair.result.seq)
            self._waiting = False
        self._shown.append(now)
        self._latency_ms = max(0.0, (time.time() - pair.result.captured_at) * 1000)
        return True

    def waiting(self, now: float) -> bool:
        """True while no frame has arrived recently; entering this state forgets pending halves."""
        silent = self.last_pair_at is None or now - self.last_pair_at > self.waiting_after
        if silent and not self._waiting:
            log.info("no frames for %.1fs: %s", self.waiting_after, WAITING_TEXT)
            self._waiting = True
            self.joiner.reset()
            self.seqs.forget()  # a restarted daemon counts seq from 0 again
            self._shown.clear()
        return silent

    def fps(self) -> float:
        if len(self._shown) < 2:
            return 0.0
        span = self._shown[-1] - self._shown[0]
        return (len(self._shown) - 1) / span if span > 0 else 0.0

    def compose(self, now: float, paused: bool = False) -> np.ndarray:
        """The full window image for the current state."""
        waiting = self.waiting(now)
        if self.current is None:
            canvas = blank_canvas()
            hud = Hud(self.camera or "-", 0.0, None, self.seqs.drops, self.status_note)
            image = draw_overlay(canvas, None, hud=hud, banner=WAITING_TEXT)
        else:
            result = self.current.result
            message = self.picker.update(dominant_emotion(result.faces))
            hud = Hud(result.camera, 0.0 if waiting else self.fps(), None if waiting else self._latency_ms,
                      self.seqs.drops, self.status_note)
            image = draw_overlay(self.current.frame.pixels, result, hud=hud, message=message,
                                 banner=WAITING_TEXT if waiting else "", landmarks=True)
        if paused:
            draw_paused(image)
        return image


def draw_paused(image: np.ndarray) -> None:
    """The "paused" badge, in place, in the top-right corner. A paused window looks like a live one whose
    camera stands still, so the state must show; a fixed place (not the end of the HUD line, which moves with
    its numbers) lets a check find it pixel by pixel."""
    (tw, th), base = cv2.getTextSize(PAUSED_TEXT, FONT, 0.5, 1)
    left = max(0, image.shape[1] - tw - 6)
    cv2.rectangle(image, (left, 0), (left + tw + 6, th + base + 6), PANEL_BG, cv2.FILLED)
    cv2.putText(image, PAUSED_TEXT, (left + 3, th + 3), FONT, 0.5, TEXT_COLOR, 1, cv2.LINE_AA)


def snapshot_path(folder: Path, pair: Pair | None) -> Path:
    """``<camera>-<seq>-<local time>.png``: the seq ties a snapshot to its frame and result."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    name = f"{pair.result.camera}-{pair.result.seq}-{stamp}.png" if pair else f"waiting-{stamp}.png"
    path = folder / name
    counter = 1
    while path.exists():
        path = folder / f"{path.stem.rsplit('~', 1)[0]}~{counter}.png"
        counter += 1
    return path


def _require_display() -> None:
    """Qt aborts the whole process without a display, so check first and say what to do instead."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise UsageError("no display (DISPLAY is not set); the viewer needs a desktop session. "
                         "Headless alternatives: `emotiond events`, `emotiond log`, `emotiond analyze`")


def run_viewer(feed: LiveFeed, model: ViewerModel, snapshots: Path, fullscreen: bool = False) -> int:
    """The GUI loop: q/Esc quit, p pause, s snapshot, f fullscreen. Returns the exit code."""
    _require_display()
    flags = cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL
    cv2.namedWindow(WINDOW_TITLE, flags)
    if fullscreen:
        cv2.setWindowProperty(WINDOW_TITLE, cv2.WND_PROP_FULLSCREEN, cv2.WINDOW_FULLSCREEN)
    size: tuple[int, int] | None = None
    paused = False
    shown = model.compose(time.monotonic())
    shown_pair = model.current  # the pair on screen; while paused, newer pairs keep arriving
    try:
        while True:
            now = time.monotonic()
            fresh = False
            for message in feed.receive(timeout_ms=5):
                fresh = model.feed(message, now) or fresh
            if model.camera and feed.camera is None:
                feed.choose_camera(model.camera)
            if not paused:
                shown, shown_pair = model.compose(now), model.current
            if shown.shape[1::-1] != size:
                size = shown.shape[1::-1]
                cv2.resizeWindow(WINDOW_TITLE, size[0], size[1])
            cv2.imshow(WINDOW_TITLE, shown)
            key = cv2.waitKey(10 if fresh else 15) & 0xFF
            if key in (ord("q"), KEY_ESC):
                return 0
            if key == ord("p"):
                paused = not paused
                shown, shown_pair = model.compose(now, paused=paused), model.current
                log.info("%s at seq %s", PAUSED_TEXT if paused else "resumed",
                         shown_pair.result.seq if shown_pair else "-")
            elif key == ord("s"):
                snapshots.mkdir(parents=True, exist_ok=True)
                path = snapshot_path(snapshots, shown_pair)
                if not cv2.imwrite(str(path), shown):
                    log.error("cannot write snapshot %s", path)
                else:
                    print(f"snapshot {path}", flush=True)
            elif key == ord("f"):
                fullscreen = not fullscreen
                cv2.setWindowProperty(WINDOW_TITLE, cv2.WND_PROP_FULLSCREEN,
                                      cv2.WINDOW_FULLSCREEN if fullscreen else cv2.WINDOW_NORMAL)
            if cv2.getWindowProperty(WINDOW_TITLE, cv2.WND_PROP_VISIBLE) < 1:
                return 0  # closed with the window manager's button
    finally:
        feed.close()
        cv2.destroyAllWindows()
