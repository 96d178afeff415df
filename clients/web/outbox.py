"""What one browser or stream has yet to receive: the newest JPEG per watched camera, and a bounded queue of
JSON messages.

A slow client never slows the others or the encoder: a frame it has not taken yet is replaced by the next
one, and when its message queue is full the oldest message goes (and is counted).
"""

from __future__ import annotations

import asyncio
import collections

from emotiond.clients.web.pacing import Pacer

MAX_QUEUED_TEXTS = 512


class ViewerOutbox:
    """What one viewer (a browser's WebSocket or an MJPEG stream) has yet to take: frames and JSON texts."""

    def __init__(self, max_texts: int = MAX_QUEUED_TEXTS):
        self._texts: collections.deque[str] = collections.deque()
        self._max_texts = max_texts
        self._frames: dict[str, tuple[int, bytes]] = {}
        self._pacers: dict[str, Pacer] = {}
        self._wake = asyncio.Event()
        self.closed = False
        self.dropped_texts = 0
        self.replaced_frames = 0
        self.sent_frames = 0

    # ------------------------------------------------------------ producers
    def watch(self, camera: str, fps: float) -> None:
        self._pacers[camera] = Pacer(fps)

    def unwatch(self, camera: str) -> None:
        self._pacers.pop(camera, None)
        self._frames.pop(camera, None)

    def watching(self) -> dict[str, float]:
        return {camera: 1.0 / pacer.interval for camera, pacer in self._pacers.items()}

    def offer_frame(self, camera: str, seq: int, jpeg: bytes, now: float) -> None:
        pacer = self._pacers.get(camera)
        if pacer is None or not pacer.ready(now):
            return
        if camera in self._frames:
            self.replaced_frames += 1
        self._frames[camera] = (seq, jpeg)
        self._wake.set()

    def offer_text(self, text: str) -> None:
        if len(self._texts) >= self._max_texts:
            self._texts.popleft()
            self.dropped_texts += 1
        self._texts.append(text)
        self._wake.set()

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    # ------------------------------------------------------------ the client's sender
    async def take(self, timeout: float | None = None) -> tuple[list[str], list[tuple[str, int, bytes]]]:
        """Everything waiting, after waiting up to ``timeout`` for something; empty lists once closed."""
        while not (self._texts or self._frames or self.closed):
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                return [], []
        if self.closed:
            return [], []
        texts = list(self._texts)
        self._texts.clear()
        frames = [(camera, seq, jpeg) for camera, (seq, jpeg) in self._frames.items()]
        self._frames.clear()
        self.sent_frames += len(frames)
        return texts, frames
