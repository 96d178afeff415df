"""Snapshots for MQTT: a JPEG of the annotated frame whose result changed a camera's dominant emotion.

Frames and results travel separately, so they are paired by (camera, seq) with the viewer's joiner; a camera
asks for a snapshot, and the next pair of that camera (normally the very result that asked) fills it.
"""

from __future__ import annotations

import logging

import cv2

from emotiond.clients.join import FrameResultJoiner, Pair
from emotiond.clients.overlay import draw_overlay
from emotiond.core.protocol import Frame, Result

log = logging.getLogger(__name__)
PENDING_PER_KIND = 16  # unmatched frames (and results) kept for pairing


class Snapshots:
    def __init__(self, quality: int):
        self.quality = quality
        self._joiner = FrameResultJoiner(PENDING_PER_KIND)
        self._wanted: set[str] = set()

    def want(self, camera: str) -> None:
        self._wanted.add(camera)

    def add(self, message: Frame | Result) -> tuple[str, bytes] | None:
        """(camera, JPEG) when this message completes a pair of a camera that wants a snapshot."""
        wanted = message.header.camera if isinstance(message, Frame) else message.camera
        if wanted not in self._wanted:
            if isinstance(message, Frame):  # kept only for a snapshot asked by its own result, which follows
                self._joiner.add_frame(message)
            return None
        pair = self._joiner.add_frame(message) if isinstance(message, Frame) else self._joiner.add_result(message)
        return None if pair is None else self._encode(pair)

    def _encode(self, pair: Pair) -> tuple[str, bytes] | None:
        camera = pair.result.camera
        self._wanted.discard(camera)
        image = draw_overlay(pair.frame.pixels, pair.result)
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            log.warning("camera %s: JPEG encoding of a snapshot failed", camera)
            return None
        return camera, jpeg.tobytes()
