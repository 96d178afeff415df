"""One JPEG encoder of one camera at one size, shared by everyone who watches the camera at that size.

It runs at the highest rate any of its viewers asked for and hands each new JPEG to every viewer, which takes it
if its own rate allows: a camera is encoded once per size however many browsers watch it, and not at all when
nobody does. Sizes are rounded to a step, so browsers whose tiles differ by a few pixels share one encoder.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from emotiond.clients.join import Pair
from emotiond.clients.web.pacing import Pacer

log = logging.getLogger(__name__)
HEIGHT_STEP = 40  # requested heights are rounded to a multiple of this (and never above the frame's own)


class FrameSink(Protocol):
    """A viewer: takes the JPEGs it has time for."""

    def offer_frame(self, camera: str, seq: int, jpeg: bytes, now: float) -> None: ...


def encoder_height(requested: int | None) -> int | None:
    """The height an encoder draws for a viewer that asked for ``requested`` pixels (None: the frame's own)."""
    if requested is None:
        return None
    return max(HEIGHT_STEP, round(requested / HEIGHT_STEP) * HEIGHT_STEP)


class SharedEncoder:
    def __init__(self, camera: str, height: int | None, render: Callable[[Pair, int | None], bytes],
                 encode: Callable[[Callable[[], bytes]], asyncio.Future[bytes]]):
        self.camera = camera
        self.height = height
        self.latest: tuple[int, bytes] | None = None  # the newest JPEG and its frame's seq
        self.encoded = 0
        self.encode_seconds = 0.0
        self._render = render
        self._encode_in_executor = encode
        self._viewers: dict[FrameSink, float] = {}
        self._pacer = Pacer(10.0)
        self._encoding = False
        self._pair: Pair | None = None
        self._encoded_pair: Pair | None = None
        self._timer: asyncio.TimerHandle | None = None

    @property
    def viewers(self) -> dict[FrameSink, float]:
        return self._viewers

    def add(self, viewer: FrameSink, fps: float) -> None:
        self._viewers[viewer] = fps
        self._pacer.set_fps(max(self._viewers.values()))

    def remove(self, viewer: FrameSink) -> None:
        self._viewers.pop(viewer, None)
        if self._viewers:
            self._pacer.set_fps(max(self._viewers.values()))
        else:
            self.stop()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def offer(self, pair: Pair) -> None:
        """A new frame with its result: encoded now, or when the pacer next allows (the newest by then)."""
        self._pair = pair
        self._maybe_encode()

    def _maybe_encode(self) -> None:
        if not self._viewers or self._encoding or self._pair is None or self._pair is self._encoded_pair:
            return
        now = time.monotonic()
        if not self._pacer.ready(now):
            if self._timer is None:
                self._timer = asyncio.get_running_loop().call_later(self._pacer.wait(now), self._on_timer)
            return
        self._encoding = True
        asyncio.get_running_loop().create_task(self._encode(self._pair))

    def _on_timer(self) -> None:
        self._timer = None
        self._maybe_encode()

    async def _encode(self, pair: Pair) -> None:
        started = time.monotonic()
        try:
            jpeg = await self._encode_in_executor(lambda: self._render(pair, self.height))
        except Exception:
            log.exception("encoding a frame of %s failed", self.camera)
            return
        finally:
            self._encoding = False
        self._encoded_pair = pair
        self.latest = (pair.result.seq, jpeg)
        self.encoded += 1
        done = time.monotonic()
        self.encode_seconds += done - started
        for viewer in list(self._viewers):
            viewer.offer_frame(self.camera, pair.result.seq, jpeg, done)
        self._maybe_encode()
