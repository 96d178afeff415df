"""``/ws``: one WebSocket per browser, carrying results, change events, status and messages as JSON, and the
annotated frames of the cameras it watches as binary messages."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import WSMsgType, web

from emotiond.clients.overlay import EMOTION_COLORS
from emotiond.clients.web.auth import SESSION_RECHECK_SECONDS, USER_KEY
from emotiond.clients.web.context import GUARD, HUB
from emotiond.clients.web.hub import WS_TOPICS, Hub, StreamLimitError
from emotiond.clients.web.media import MAX_HEIGHT, MIN_HEIGHT
from emotiond.clients.web.outbox import ViewerOutbox
from emotiond.clients.web.responses import json_error

log = logging.getLogger(__name__)
WS_MAX_MESSAGE_BYTES = 64 * 1024
WS_MAX_WATCH = 64
WS_HEARTBEAT_SECONDS = 10.0  # a browser that vanished without closing is noticed this fast
WS_CLOSE_SESSION_ENDED = 4401
EMOTION_CSS = {emotion: "#{2:02x}{1:02x}{0:02x}".format(*bgr) for emotion, bgr in EMOTION_COLORS.items()}


class _WsSession:
    """One browser: the topics it wants, the cameras whose frames it watches, and its outbox."""

    def __init__(self, hub: Hub, outbox: ViewerOutbox):
        self.hub = hub
        self.outbox = outbox
        self.watching: set[str] = set()

    def handle(self, text: str) -> None:
        try:
            request = json.loads(text)
        except json.JSONDecodeError:
            self.error("messages must be JSON objects")
            return
        if not isinstance(request, dict) or not set(request) <= {"watch", "fps", "heights", "topics"}:
            self.error("send {\"watch\": [camera, ...], \"fps\": N, \"heights\": {camera: pixels}} and/or "
                       "{\"topics\": [...]}")
            return
        if "topics" in request:
            topics = request["topics"]
            if not isinstance(topics, list) or not set(topics) <= set(WS_TOPICS):
                self.error(f"topics must be a list of {', '.join(WS_TOPICS)}")
            else:
                self.hub.set_client_topics(self.outbox, frozenset(topics))
        if "watch" in request:
            self.watch(request["watch"], request.get("fps", self.hub.settings.web.stream_fps),
                       request.get("heights", {}))

    def watch(self, cameras: Any, fps: Any, heights: Any) -> None:
        """Frames of ``cameras`` from now on, at ``fps``, each camera at the height its tile shows it at
        (``heights``, device pixels; a camera left out comes at its own size)."""
        web_settings = self.hub.settings.web
        if not isinstance(cameras, list) or len(cameras) > WS_MAX_WATCH or not all(
                isinstance(c, str) for c in cameras):
            self.error(f"watch must be a list of at most {WS_MAX_WATCH} camera names")
            return
        if isinstance(fps, bool) or not isinstance(fps, int | float) or not 0.1 <= fps <= web_settings.max_stream_fps:
            self.error(f"fps must be a number from 0.1 to {web_settings.max_stream_fps:g}")
            return
        if not isinstance(heights, dict) or not all(
                isinstance(h, int) and not isinstance(h, bool) and MIN_HEIGHT <= h <= MAX_HEIGHT
                for h in heights.values()):
            self.error(f"heights must map camera names to whole pixels from {MIN_HEIGHT} to {MAX_HEIGHT}")
            return
        unknown = [c for c in cameras if self.hub.feed(c) is None]
        if unknown:
            self.error(f"unknown cameras: {', '.join(c[:70] for c in unknown)}")
        wanted = {c for c in cameras if c not in unknown}
        for camera in self.watching - wanted:
            self.unwatch(camera)
        for camera in wanted:
            feed = self.hub.feed(camera)
            assert feed is not None
            self.outbox.watch(camera, float(fps))
            feed.add_viewer(self.outbox, float(fps), heights.get(camera))
        self.watching = wanted

    def unwatch(self, camera: str) -> None:
        feed = self.hub.feed(camera)
        self.outbox.unwatch(camera)
        if feed is not None:
            feed.remove_viewer(self.outbox)

    def error(self, message: str) -> None:
        self.outbox.offer_text(json.dumps({"topic": "error", "payload": {"error": message}}))

    def close(self) -> None:
        for camera in list(self.watching):
            self.unwatch(camera)
        self.watching.clear()


async def _ws_sender(ws: web.WebSocketResponse, outbox: ViewerOutbox) -> None:
    """Texts as they come; each frame as one binary message: name length (1 byte), camera name (ASCII), seq
    (8 bytes, big-endian), then the JPEG."""
    while not outbox.closed and not ws.closed:
        texts, frames = await outbox.take()
        for text in texts:
            await ws.send_str(text)
        for camera, seq, jpeg in frames:
            name = camera.encode("ascii")
            await ws.send_bytes(bytes([len(name)]) + name + seq.to_bytes(8, "big") + jpeg)


def _retrieve(task: asyncio.Task) -> None:
    """Collect a finished sender's outcome (a closed socket's send error is expected, not news)."""
    if not task.cancelled() and task.exception() is not None:
        log.debug("WebSocket sender ended: %s", task.exception())


async def _close_when_session_ends(request: web.Request, ws: web.WebSocketResponse) -> None:
    guard = request.app[GUARD]
    while not ws.closed:
        await asyncio.sleep(SESSION_RECHECK_SECONDS)
        if not guard.still_allowed(request):
            log.info("closing a WebSocket of %s: the session ended", request.get(USER_KEY, "?"))
            await ws.close(code=WS_CLOSE_SESSION_ENDED, message=b"session ended")
            return


async def websocket(request: web.Request) -> web.StreamResponse:
    hub = request.app[HUB]
    try:
        hub.open_stream()
    except StreamLimitError as exc:
        return json_error(503, str(exc), headers={"Retry-After": "5"})
    # No permessage-deflate: the frames are JPEG already, deflating them costs CPU for nothing.
    ws = web.WebSocketResponse(heartbeat=WS_HEARTBEAT_SECONDS, max_msg_size=WS_MAX_MESSAGE_BYTES, compress=False)
    outbox = ViewerOutbox()
    session = _WsSession(hub, outbox)
    sender: asyncio.Task | None = None
    watcher: asyncio.Task | None = None
    try:
        await ws.prepare(request)
        outbox.offer_text(json.dumps({"topic": "hello", "payload": {
            "emotion_colors": EMOTION_CSS, "stream_fps": hub.settings.web.stream_fps,
            "cameras": sorted(hub.feeds)}}))
        hub.add_client(outbox)
        sender = asyncio.create_task(_ws_sender(ws, outbox))
        watcher = asyncio.create_task(_close_when_session_ends(request, ws))
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                session.handle(message.data)
            elif message.type == WSMsgType.BINARY:
                session.error("binary messages are not accepted")
    except (ConnectionResetError, ConnectionError):
        pass
    finally:
        # Bookkeeping first and without awaiting: aiohttp may cancel this handler once the socket closes.
        session.close()
        hub.remove_client(outbox)
        hub.close_stream()
        outbox.close()
        for task in (sender, watcher):
            if task is not None:
                task.cancel()
                task.add_done_callback(_retrieve)
    return ws
