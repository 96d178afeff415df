"""The console's HTTP surface: the page, the JSON and media API, photo upload and the WebSocket.

Conventions follow Frigate where they fit: ``/api/<camera>`` is an MJPEG stream, ``/api/<camera>/latest.jpg``
the newest frame, ``/api/events`` and ``/api/stats`` JSON. Every bad input gets a JSON error with a 4xx status.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable
from importlib.resources import files
from typing import Any

from aiohttp import BodyPartReader, WSMsgType, web

from emotiond.clients.overlay import EMOTION_COLORS
from emotiond.clients.web import stats
from emotiond.clients.web.analysis import BusyError, PhotoAnalysis, UnavailableError
from emotiond.clients.web.auth import Guard, json_error
from emotiond.clients.web.hub import WS_TOPICS, Hub, StreamLimitError
from emotiond.clients.web.images import CONTENT_TYPES, ImageError, decode_image
from emotiond.clients.web.outbox import Outbox
from emotiond.clients.web.ring import TOPICS, Query
from emotiond.daemon.core.protocol import CAMERA_NAME_PATTERN
from emotiond.daemon.core.settings import Settings

log = logging.getLogger(__name__)
STATIC_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
CAMERA_RE = re.compile(CAMERA_NAME_PATTERN)
EMOTION_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
LEASE_SECONDS = 10.0  # a latest.jpg caller keeps the camera's frames coming this long
LATEST_WAIT_SECONDS = 3.0
DISCONNECT_CHECK_SECONDS = 1.0
BOUNDARY = "frame"
WS_MAX_MESSAGE_BYTES = 64 * 1024
WS_MAX_WATCH = 64
WS_HEARTBEAT_SECONDS = 10.0  # a browser that vanished without closing is noticed this fast
STATS_CACHE_SECONDS = 1.0
MIN_HEIGHT, MAX_HEIGHT = 16, 4096

EMOTION_CSS = {emotion: "#{2:02x}{1:02x}{0:02x}".format(*bgr) for emotion, bgr in EMOTION_COLORS.items()}

HUB = web.AppKey("hub", Hub)
GUARD = web.AppKey("guard", Guard)
ANALYSIS = web.AppKey("analysis", PhotoAnalysis)
SETTINGS = web.AppKey("settings", Settings)
STATIC = web.AppKey("static", dict)
STATS_CACHE = web.AppKey("stats_cache", dict)


class BadParameter(web.HTTPBadRequest):
    def __init__(self, message: str):
        super().__init__(text=json.dumps({"error": message, "status": 400}), content_type="application/json")


def load_static() -> dict[str, bytes]:
    """The page's files, shipped as package data."""
    folder = files("emotiond.clients.web").joinpath("static")
    return {entry.name: entry.read_bytes() for entry in folder.iterdir()
            if entry.is_file() and any(entry.name.endswith(suffix) for suffix in STATIC_TYPES)}


def _static(request: web.Request, name: str) -> web.Response:
    body = request.app[STATIC].get(name)
    if body is None:
        return json_error(404, f"no static file {name!r}")
    suffix = name[name.rfind("."):]
    return web.Response(body=body, content_type=STATIC_TYPES[suffix], charset="utf-8",
                        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})


# ---------------------------------------------------------------- parameters

def _number(request: web.Request, key: str, default: float | None, low: float, high: float) -> float | None:
    text = request.query.get(key)
    if text is None or text == "":
        return default
    try:
        value = float(text)
    except ValueError:
        raise BadParameter(f"{key} must be a number, got {text[:40]!r}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise BadParameter(f"{key} must be between {low:g} and {high:g}, got {text[:40]!r}")
    return value


def _integer(request: web.Request, key: str, default: int | None, low: int, high: int) -> int | None:
    text = request.query.get(key)
    if text is None or text == "":
        return default
    if not re.fullmatch(r"\d{1,9}", text):
        raise BadParameter(f"{key} must be a whole number from {low} to {high}, got {text[:40]!r}")
    value = int(text)
    if not low <= value <= high:
        raise BadParameter(f"{key} must be a whole number from {low} to {high}, got {value}")
    return value


def _camera(request: web.Request) -> str:
    name = request.match_info["camera"]
    if not CAMERA_RE.match(name):
        raise BadParameter(f"bad camera name {name[:70]!r}")
    return name


def _feed(request: web.Request):
    name = _camera(request)
    feed = request.app[HUB].feed(name)
    if feed is None:
        raise web.HTTPNotFound(text=json.dumps({"error": f"unknown camera {name!r}", "status": 404}),
                               content_type="application/json")
    return feed


# ---------------------------------------------------------------- pages

async def index(request: web.Request) -> web.Response:
    return _static(request, "index.html")


async def static_file(request: web.Request) -> web.Response:
    return _static(request, request.match_info["name"])


async def login_form(request: web.Request) -> web.StreamResponse:
    if not request.app[GUARD].enabled:
        raise web.HTTPSeeOther("/")
    return _static(request, "login.html")


async def login(request: web.Request) -> web.StreamResponse:
    guard = request.app[GUARD]
    if not guard.enabled:
        raise web.HTTPSeeOther("/")
    if not guard.login_allowed():
        return json_error(429, "too many failed logins; wait a minute")
    if request.content_type != "application/x-www-form-urlencoded":
        return json_error(415, "send the login form (application/x-www-form-urlencoded)")
    form = await request.post()
    token = form.get("token")
    if not isinstance(token, str) or not guard.check_login(token, request.remote):
        response = _static(request, "login.html")
        response.set_status(401)
        return response
    response = web.HTTPSeeOther("/")
    guard.session_cookie(response)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    response = web.HTTPSeeOther("/login")
    response.del_cookie("emotiond_session", path="/")
    return response


# ---------------------------------------------------------------- JSON API

async def health(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    return web.json_response({"status": "ok", "uptime_s": round(time.monotonic() - hub.started_at, 1),
                              "cameras": len(hub.feeds), "results_received": hub.results_received})


async def cameras(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    now = time.monotonic()
    return web.json_response({"cameras": [hub.feeds[name].describe(now) for name in sorted(hub.feeds)]})


async def events(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    camera = request.query.get("camera") or None
    if camera is not None and not CAMERA_RE.match(camera):
        raise BadParameter(f"bad camera name {camera[:70]!r}")
    emotion = request.query.get("emotion") or None
    if emotion is not None and not EMOTION_RE.match(emotion):
        raise BadParameter(f"bad emotion {emotion[:70]!r}")
    topic = request.query.get("topic") or None
    if topic is not None and topic not in TOPICS:
        raise BadParameter(f"topic must be one of {', '.join(TOPICS)}")
    after = _number(request, "after", None, 0, 1e11)
    before = _number(request, "before", None, 0, 1e11)
    limit = _integer(request, "limit", min(100, hub.settings.web.events_ring), 1, hub.settings.web.events_ring)
    assert limit is not None
    found = hub.ring.query(Query(camera=camera, emotion=emotion, topic=topic, after=after, before=before,
                                 limit=limit))
    return web.json_response({"events": found, "count": len(found)})


async def stats_view(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    cache = request.app[STATS_CACHE]
    now = time.monotonic()
    if now - cache.get("at", -1e9) > STATS_CACHE_SECONDS:
        folder = hub.settings.bus.runtime_dir / "metrics"
        samples = await asyncio.get_running_loop().run_in_executor(None, stats.read_samples, folder)
        cache.update(at=now, samples=samples)
    samples = cache["samples"]
    figures = stats.camera_figures(samples) if samples is not None else {}
    cameras_out: dict[str, Any] = {}
    for name in sorted(set(hub.feeds) | set(figures)):
        feed = hub.feeds.get(name)
        entry = {"fps": round(feed.fps(now), 2) if feed else 0.0, "status": feed.status if feed else "unknown"}
        entry.update(figures.get(name, {}))
        if feed is not None:
            entry["web"] = {"viewers": feed.viewers(), "encoded_frames": feed.encoded,
                            "encode_ms_mean": round(feed.encode_seconds / feed.encoded * 1000, 2)
                            if feed.encoded else None}
        cameras_out[name] = entry
    return web.json_response({
        "cameras": cameras_out,
        "metrics": "daemon metric files" if samples is not None else None,
        "web": {"streams": hub.streams, "max_streams": hub.settings.web.max_streams,
                "frame_subscriptions": list(hub.frame_cameras), "results_received": hub.results_received,
                "frames_received": hub.frames_received, "bad_messages": dict(hub.bad_messages),
                "photos_analysed": request.app[ANALYSIS].analysed,
                "uptime_s": round(now - hub.started_at, 1)},
    })


# ---------------------------------------------------------------- media

async def latest_jpg(request: web.Request) -> web.Response:
    feed = _feed(request)
    bbox = request.query.get("bbox", "1")
    if bbox not in ("0", "1"):
        raise BadParameter("bbox must be 0 (raw frame) or 1 (annotated)")
    height = _integer(request, "height", None, MIN_HEIGHT, MAX_HEIGHT)
    feed.lease(max(LEASE_SECONDS, LATEST_WAIT_SECONDS))  # frames keep coming at least while this request waits
    pair = await feed.fresh_pair(LATEST_WAIT_SECONDS)
    if pair is None:
        return json_error(503, f"no frame from camera {feed.name!r} yet (status: {feed.status})",
                          headers={"Retry-After": "1"})
    jpeg = await feed.render(pair, annotate=bbox == "1", height=height)
    return web.Response(body=jpeg, content_type="image/jpeg",
                        headers={"Cache-Control": "no-store", "X-Emotiond-Seq": str(pair.result.seq)})


async def mjpeg(request: web.Request) -> web.StreamResponse:
    feed = _feed(request)
    hub = request.app[HUB]
    web_settings = hub.settings.web
    fps = _number(request, "fps", web_settings.stream_fps, 0.1, web_settings.max_stream_fps)
    assert fps is not None
    try:
        hub.open_stream()
    except StreamLimitError as exc:
        return json_error(503, str(exc), headers={"Retry-After": "5"})
    outbox = Outbox()
    response = web.StreamResponse(headers={
        "Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}", "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff"})
    try:
        await response.prepare(request)
        outbox.watch(feed.name, fps)
        feed.add_viewer(outbox, fps)
        while not outbox.closed:
            _texts, frames = await outbox.take(DISCONNECT_CHECK_SECONDS)
            if request.transport is None or request.transport.is_closing():
                break
            for _camera, _seq, jpeg in frames:
                await response.write(b"--" + BOUNDARY.encode() + b"\r\nContent-Type: image/jpeg\r\n"
                                     b"Content-Length: " + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n")
    except (ConnectionResetError, ConnectionError):
        pass
    finally:
        feed.remove_viewer(outbox)
        hub.close_stream()
    return response


# ---------------------------------------------------------------- upload

async def _read_capped(read: Callable[[int], Awaitable[bytes]], limit: int) -> bytes:
    """The whole body from ``read(n)`` (b"" at its end), refused with 413 as soon as it passes ``limit``."""
    chunks, size = [], 0
    while chunk := await read(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise ImageError(413, f"the upload is larger than the limit of {limit} bytes ([web] max_upload_bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


async def _upload_bytes(request: web.Request, limit: int) -> bytes:
    content_type = request.content_type
    if request.content_length is not None and request.content_length > limit + (
            64 * 1024 if content_type == "multipart/form-data" else 0):
        raise ImageError(413, f"the upload is larger than the limit of {limit} bytes ([web] max_upload_bytes)")
    if content_type in CONTENT_TYPES:
        return await _read_capped(request.content.read, limit)
    if content_type == "multipart/form-data":
        try:
            reader = await request.multipart()
            while True:
                part = await reader.next()
                if part is None:
                    raise ImageError(400, "the form holds no file: send the photo in a field named 'image'")
                if isinstance(part, BodyPartReader) and (part.filename or part.name in ("image", "file")):
                    return await _read_capped(part.read_chunk, limit)
                if isinstance(part, BodyPartReader):
                    await part.release()
        except ImageError:
            raise
        except (ValueError, AssertionError) as exc:  # aiohttp's multipart reader on a broken body
            raise ImageError(400, f"malformed multipart body: {exc}") from None
    raise ImageError(415, f"unsupported content type {content_type!r}: send an image "
                          f"({', '.join(CONTENT_TYPES)}) as the body, or multipart/form-data with an 'image' file")


async def analyze(request: web.Request) -> web.Response:
    web_settings = request.app[SETTINGS].web
    try:
        data = await _upload_bytes(request, web_settings.max_upload_bytes)
        image = await asyncio.get_running_loop().run_in_executor(None, decode_image, data,
                                                                 web_settings.max_upload_pixels)
    except ImageError as exc:
        return json_error(exc.status, str(exc))
    try:
        reply = await request.app[ANALYSIS].analyse(image)
    except BusyError as exc:
        return json_error(503, str(exc), headers={"Retry-After": "2"})
    except UnavailableError as exc:
        log.error("photo analysis unavailable: %s", exc)
        return json_error(503, f"photo analysis unavailable: {exc}")
    return web.json_response(reply)


async def post_only(request: web.Request) -> web.Response:
    return json_error(405, "POST an image here", headers={"Allow": "POST"})


# ---------------------------------------------------------------- WebSocket

class _WsSession:
    """One browser: the topics it wants, the cameras whose frames it watches, and its outbox."""

    def __init__(self, hub: Hub, outbox: Outbox):
        self.hub = hub
        self.outbox = outbox
        self.watching: set[str] = set()

    def handle(self, text: str) -> None:
        try:
            request = json.loads(text)
        except json.JSONDecodeError:
            self.error("messages must be JSON objects")
            return
        if not isinstance(request, dict) or not set(request) <= {"watch", "fps", "topics"}:
            self.error("send {\"watch\": [camera, ...], \"fps\": N} and/or {\"topics\": [...]}")
            return
        if "topics" in request:
            topics = request["topics"]
            if not isinstance(topics, list) or not set(topics) <= set(WS_TOPICS):
                self.error(f"topics must be a list of {', '.join(WS_TOPICS)}")
            else:
                self.hub.set_client_topics(self.outbox, frozenset(topics))
        if "watch" in request:
            self.watch(request["watch"], request.get("fps", self.hub.settings.web.stream_fps))

    def watch(self, cameras: Any, fps: Any) -> None:
        web_settings = self.hub.settings.web
        if not isinstance(cameras, list) or len(cameras) > WS_MAX_WATCH or not all(
                isinstance(c, str) for c in cameras):
            self.error(f"watch must be a list of at most {WS_MAX_WATCH} camera names")
            return
        if isinstance(fps, bool) or not isinstance(fps, int | float) or not 0.1 <= fps <= web_settings.max_stream_fps:
            self.error(f"fps must be a number from 0.1 to {web_settings.max_stream_fps:g}")
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
            feed.add_viewer(self.outbox, float(fps))
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


async def _ws_sender(ws: web.WebSocketResponse, outbox: Outbox) -> None:
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


async def websocket(request: web.Request) -> web.StreamResponse:
    hub = request.app[HUB]
    try:
        hub.open_stream()
    except StreamLimitError as exc:
        return json_error(503, str(exc), headers={"Retry-After": "5"})
    ws = web.WebSocketResponse(heartbeat=WS_HEARTBEAT_SECONDS, max_msg_size=WS_MAX_MESSAGE_BYTES)
    outbox = Outbox()
    session = _WsSession(hub, outbox)
    sender: asyncio.Task | None = None
    try:
        await ws.prepare(request)
        outbox.offer_text(json.dumps({"topic": "hello", "payload": {
            "emotion_colors": EMOTION_CSS, "stream_fps": hub.settings.web.stream_fps,
            "cameras": sorted(hub.feeds)}}))
        hub.add_client(outbox)
        sender = asyncio.create_task(_ws_sender(ws, outbox))
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
        if sender is not None:
            sender.cancel()
            sender.add_done_callback(_retrieve)
    return ws


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static_file)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/ws", websocket)
    app.router.add_get("/api/health", health)
    app.router.add_get("/api/cameras", cameras)
    app.router.add_get("/api/events", events)
    app.router.add_get("/api/stats", stats_view)
    app.router.add_post("/api/analyze", analyze)
    app.router.add_get("/api/analyze", post_only)  # not a camera called "analyze"
    app.router.add_get("/api/{camera}/latest.jpg", latest_jpg)
    app.router.add_get("/api/{camera}", mjpeg)
