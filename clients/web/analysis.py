"""Photo upload: the in-process pipeline (``emotiond.clients.api.Analyzer``), loaded on the first upload and
run on its own thread, so the server keeps streaming while a photo is analysed."""

from __future__ import annotations

import asyncio
import base64
import logging
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import cv2
import numpy as np

from emotiond.clients.messages import MessagePicker, dominant_emotion
from emotiond.clients.overlay import draw_overlay
from emotiond.core.errors import UsageError
from emotiond.core.settings import Settings

log = logging.getLogger(__name__)
UPLOAD_CAMERA = "upload"
MAX_WAITING = 4  # uploads queued behind the one being analysed; more get 503
ANNOTATED_MAX_SIDE = 1280  # the annotated copy sent back is scaled down to this, so labels stay legible


class BusyError(Exception):
    """Too many uploads waiting."""


class UnavailableError(Exception):
    """The pipeline cannot be loaded (no model bundle, a broken one)."""


class PhotoAnalysis:
    def __init__(self, settings: Settings, messages: Mapping[str, Sequence[str]]):
        self._settings = settings
        self._messages = messages
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="web-analyze")
        self._analyzer: Any = None
        self._load_lock = threading.Lock()
        self._waiting = 0
        self._seq = 0
        self.analysed = 0

    def _load(self) -> Any:
        with self._load_lock:
            if self._analyzer is None:
                from emotiond.clients.api import Analyzer

                log.info("loading the pipeline for photo uploads")
                self._analyzer = Analyzer(self._settings)
            return self._analyzer

    def _run(self, image: np.ndarray, seq: int, quality: int) -> dict[str, Any]:
        try:
            analyzer = self._load()
        except (UsageError, OSError) as exc:
            raise UnavailableError(str(exc)) from None
        image, result = analyzer.result_image(image, camera=UPLOAD_CAMERA, seq=seq)  # faces hidden per [privacy]
        emotion = dominant_emotion(result.faces)
        message = MessagePicker(self._messages).update(emotion)
        scale = min(1.0, ANNOTATED_MAX_SIDE / max(image.shape[:2]))
        shown = image if scale >= 1.0 else cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        annotated = draw_overlay(shown, result, message=message, landmarks=True)
        ok, jpeg = cv2.imencode(".jpg", annotated, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        return {"result": result.to_dict(), "emotion": emotion, "message": message,
                "image": "data:image/jpeg;base64," + base64.b64encode(jpeg.tobytes()).decode("ascii")}

    async def analyse(self, image: np.ndarray) -> dict[str, Any]:
        """The result in the event schema, the dominant emotion, its message and the annotated JPEG."""
        if self._waiting > MAX_WAITING:
            raise BusyError(f"{self._waiting} photos are waiting to be analysed; try again shortly")
        self._waiting += 1
        self._seq += 1
        try:
            reply = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._run, image, self._seq, self._settings.web.jpeg_quality)
        finally:
            self._waiting -= 1
        self.analysed += 1
        return reply

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
