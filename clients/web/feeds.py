"""One camera as the console sees it: source status, the newest frame joined with its result, the dominant
emotion's message, and the JPEG encoders shared by everyone who watches it (one per size asked for).

Frames reach the console only while someone watches the camera (the hub subscribes to ``frame.<camera>``
then, and workers encode frames only for subscribed topics).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from typing import Any

import cv2
import numpy as np

from emotiond.clients.join import FrameResultJoiner, Pair, SeqCounter
from emotiond.clients.messages import MessagePicker, dominant_emotion
from emotiond.clients.overlay import Hud, draw_overlay
from emotiond.clients.web.encoder import FrameSink, SharedEncoder, encoder_height
from emotiond.clients.web.pacing import RateMeter
from emotiond.core import protocol

log = logging.getLogger(__name__)
JOIN_CAPACITY = 8  # unmatched frames/results kept per camera: a frame comes just before its result
FRESH_SECONDS = 1.0  # a joined frame younger than this answers latest.jpg at once
UNKNOWN = "unknown"


def render_jpeg(pair: Pair, *, annotate: bool, hud: Hud | None, message: str, height: int | None,
                quality: int) -> bytes:
    """The frame (scaled to ``height`` first, so labels stay legible) with boxes, labels, HUD and message.

    Downscaling by less than half is bilinear: area averaging at such ratios costs several times more and looks
    the same once the browser shows the image at that size."""
    pixels = pair.frame.pixels
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if height and height != pixels.shape[0]:
        width = max(1, round(pixels.shape[1] * height / pixels.shape[0]))
        interpolation = cv2.INTER_AREA if 2 * height < pixels.shape[0] else cv2.INTER_LINEAR
        pixels = cv2.resize(pixels, (width, height), interpolation=interpolation)
    image = draw_overlay(pixels, pair.result, hud=hud, message=message, landmarks=True) if annotate else pixels
    ok, buffer = cv2.imencode(".jpg", np.ascontiguousarray(image), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buffer.tobytes()


class CameraFeed:
    def __init__(self, name: str, messages: Mapping[str, Sequence[str]], executor: Executor, *,
                 quality: int, on_watch_change: Callable[[], None]):
        self.name = name
        self.status = UNKNOWN
        self.status_message = ""
        self.status_at: float | None = None
        self.frame_size: tuple[int, int] | None = None
        self.message = ""
        self.emotion: str | None = None
        self.pair: Pair | None = None
        self.pair_at: float | None = None
        self.last_result_at: float | None = None
        self._quality = quality
        self._executor = executor
        self._on_watch_change = on_watch_change
        self._picker = MessagePicker(messages)
        self._joiner = FrameResultJoiner(JOIN_CAPACITY)
        self._seqs = SeqCounter()
        self._results = RateMeter()
        self._pairs = RateMeter()
        self._latency_ms: float | None = None
        self._encoders: dict[int | None, SharedEncoder] = {}
        self._encoder_of: dict[FrameSink, SharedEncoder] = {}
        self._retired_encoded = (0, 0.0)  # frames and seconds of encoders no longer in use
        self._lease_until = 0.0
        self._waiters: list[asyncio.Future[Pair]] = []

    # ------------------------------------------------------------ what the bus says
    def on_status(self, status: protocol.Status) -> None:
        self.status, self.status_message, self.status_at = status.state, status.message, status.at
        if status.state != "up":
            self._joiner.reset(self.name)

    def on_result(self, result: protocol.Result, now: float) -> None:
        """Take a result. A result means the source delivers, whatever status came before."""
        self.frame_size = result.frame_size
        self.last_result_at = now
        self._results.add(now)
        if self.status in (UNKNOWN, "down"):
            self.status, self.status_message = "up", "results arriving"
        emotion = dominant_emotion(result.faces)
        self.message = self._picker.update(emotion)
        self.emotion = emotion
        if self.watched(now):
            pair = self._joiner.add_result(result)
            if pair is not None:
                self._new_pair(pair, now)

    def on_frame(self, frame: protocol.Frame, now: float) -> None:
        pair = self._joiner.add_frame(frame)
        if pair is not None:
            self._new_pair(pair, now)

    def _new_pair(self, pair: Pair, now: float) -> None:
        if not self._seqs.see(self.name, pair.result.seq):
            return  # older than the one we have
        self.pair, self.pair_at = pair, now
        self._pairs.add(now)
        self._latency_ms = max(0.0, (time.time() - pair.result.captured_at) * 1000)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(pair)
        for encoder in self._encoders.values():
            encoder.offer(pair)

    # ------------------------------------------------------------ figures
    def fps(self, now: float) -> float:
        """Results per second published for this camera (what the daemon processes)."""
        return self._results.rate(now)

    def hud(self, now: float) -> Hud:
        note = "" if self.status in ("up", UNKNOWN) else self.status
        return Hud(self.name, self._pairs.rate(now), self._latency_ms, self._seqs.drops, note)

    def describe(self, now: float) -> dict[str, Any]:
        return {"name": self.name, "frame_size": list(self.frame_size) if self.frame_size else None,
                "fps": round(self.fps(now), 2), "status": self.status, "status_message": self.status_message,
                "viewers": self.viewers(), "watched": self.watched(now), "emotion": self.emotion,
                "message": self.message}

    # ------------------------------------------------------------ who watches
    @property
    def encoded(self) -> int:
        """JPEGs the shared encoders made, all sizes, since the console started."""
        return self._retired_encoded[0] + sum(e.encoded for e in self._encoders.values())

    @property
    def encode_seconds(self) -> float:
        return self._retired_encoded[1] + sum(e.encode_seconds for e in self._encoders.values())

    def watched(self, now: float) -> bool:
        return bool(self._encoder_of) or now < self._lease_until

    def lease_until(self) -> float:
        return self._lease_until

    def viewers(self) -> int:
        return len(self._encoder_of)

    def sizes(self) -> list[int | None]:
        """The heights being encoded (None: the frame's own)."""
        return list(self._encoders)

    def add_viewer(self, viewer: FrameSink, fps: float, height: int | None = None) -> None:
        """Send ``viewer`` this camera's frames at up to ``fps``, scaled to about ``height`` pixels (never up)."""
        now = time.monotonic()
        was_watched = self.watched(now)
        size = self._encoder_size(height)
        current = self._encoder_of.get(viewer)
        if current is not None and current.height == size:
            current.add(viewer, fps)  # a new rate only
            return
        self._leave_encoder(viewer)
        encoder = self._encoders.get(size)
        if encoder is None:
            encoder = self._encoders[size] = SharedEncoder(self.name, size, self._render_shared, self._in_executor)
        encoder.add(viewer, fps)
        self._encoder_of[viewer] = encoder
        if encoder.latest is not None and self.pair_at is not None and now - self.pair_at < FRESH_SECONDS:
            viewer.offer_frame(self.name, *encoder.latest, now)
        elif self.pair is not None:
            encoder.offer(self.pair)
        if not was_watched:
            self._on_watch_change()

    def remove_viewer(self, viewer: FrameSink) -> None:
        if not self._leave_encoder(viewer):
            return
        if not self.watched(time.monotonic()):
            self._forget_frames()
            self._on_watch_change()

    def _encoder_size(self, height: int | None) -> int | None:
        """The encoder a viewer asking for ``height`` shares: heights at or above the frame's get the frame's own
        (None), so a large tile and a full-size stream are encoded once."""
        size = encoder_height(height)
        if size is not None and self.frame_size is not None and size >= self.frame_size[1]:
            return None
        return size

    def _leave_encoder(self, viewer: FrameSink) -> bool:
        encoder = self._encoder_of.pop(viewer, None)
        if encoder is None:
            return False
        encoder.remove(viewer)
        if not encoder.viewers:
            del self._encoders[encoder.height]
            frames, seconds = self._retired_encoded
            self._retired_encoded = (frames + encoder.encoded, seconds + encoder.encode_seconds)
        return True

    def lease(self, seconds: float) -> None:
        """Keep frames coming for a while without a viewer (``latest.jpg`` callers poll)."""
        now = time.monotonic()
        was_watched = self.watched(now)
        self._lease_until = max(self._lease_until, now + seconds)
        if not was_watched:
            self._on_watch_change()

    def expire(self, now: float) -> bool:
        """Called periodically: True if an expired lease just left the camera unwatched."""
        if self._lease_until and now >= self._lease_until and not self._encoder_of:
            self._lease_until = 0.0
            self._forget_frames()
            return True
        return False

    def _forget_frames(self) -> None:
        self._joiner.reset()
        self._seqs.forget()

    async def fresh_pair(self, timeout: float) -> Pair | None:
        """A recent frame with its result: the current one if fresh, else the next one (or the last known)."""
        now = time.monotonic()
        if self.pair is not None and self.pair_at is not None and now - self.pair_at < FRESH_SECONDS:
            return self.pair
        waiter: asyncio.Future[Pair] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            return self.pair
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    # ------------------------------------------------------------ the shared encoders
    def _render_shared(self, pair: Pair, height: int | None) -> bytes:
        now = time.monotonic()
        if height is not None and height >= pair.frame.pixels.shape[0]:
            height = None  # the viewer came before the frame size was known: never scale up
        return render_jpeg(pair, annotate=True, hud=self.hud(now), message=self.message, height=height,
                           quality=self._quality)

    def _in_executor(self, work: Callable[[], bytes]) -> asyncio.Future[bytes]:
        return asyncio.get_running_loop().run_in_executor(self._executor, work)

    async def render(self, pair: Pair, *, annotate: bool, height: int | None) -> bytes:
        """One JPEG on demand (latest.jpg): its own size and overlay choice, outside the shared encoder."""
        now = time.monotonic()
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, lambda: render_jpeg(pair, annotate=annotate, hud=self.hud(now) if annotate else None,
                                                message=self.message if annotate else "", height=height,
                                                quality=self._quality))
