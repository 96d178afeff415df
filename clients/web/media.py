"""Frames over HTTP: ``latest.jpg`` (drawn on demand at its own size) and the MJPEG stream of a camera (a
viewer of the camera's shared encoder)."""

from __future__ import annotations

import time

from aiohttp import web

from emotiond.clients.web.auth import SESSION_RECHECK_SECONDS
from emotiond.clients.web.context import GUARD, HUB, BadParameter, feed_of, integer, number
from emotiond.clients.web.hub import StreamLimitError
from emotiond.clients.web.outbox import ViewerOutbox
from emotiond.clients.web.responses import json_error

LEASE_SECONDS = 10.0  # a latest.jpg caller keeps the camera's frames coming this long
LATEST_WAIT_SECONDS = 3.0
DISCONNECT_CHECK_SECONDS = 1.0
BOUNDARY = "frame"
MIN_HEIGHT, MAX_HEIGHT = 16, 4096


async def latest_jpg(request: web.Request) -> web.Response:
    feed = feed_of(request)
    bbox = request.query.get("bbox", "1")
    if bbox not in ("0", "1"):
        raise BadParameter("bbox must be 0 (raw frame) or 1 (annotated)")
    height = integer(request, "height", None, MIN_HEIGHT, MAX_HEIGHT)
    feed.lease(max(LEASE_SECONDS, LATEST_WAIT_SECONDS))  # frames keep coming at least while this request waits
    pair = await feed.fresh_pair(LATEST_WAIT_SECONDS)
    if pair is None:
        return json_error(503, f"no frame from camera {feed.name!r} yet (status: {feed.status})",
                          headers={"Retry-After": "1"})
    jpeg = await feed.render(pair, annotate=bbox == "1", height=height)
    return web.Response(body=jpeg, content_type="image/jpeg",
                        headers={"Cache-Control": "no-store", "X-Emotiond-Seq": str(pair.result.seq)})


async def mjpeg(request: web.Request) -> web.StreamResponse:
    feed = feed_of(request)
    hub = request.app[HUB]
    web_settings = hub.settings.web
    fps = number(request, "fps", web_settings.stream_fps, 0.1, web_settings.max_stream_fps)
    assert fps is not None
    height = integer(request, "height", None, MIN_HEIGHT, MAX_HEIGHT)
    try:
        hub.open_stream()
    except StreamLimitError as exc:
        return json_error(503, str(exc), headers={"Retry-After": "5"})
    outbox = ViewerOutbox()
    response = web.StreamResponse(headers={
        "Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}", "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff"})
    try:
        await response.prepare(request)
        outbox.watch(feed.name, fps)
        feed.add_viewer(outbox, fps, height)
        guard, checked = request.app[GUARD], time.monotonic()
        while not outbox.closed:
            _texts, frames = await outbox.take(DISCONNECT_CHECK_SECONDS)
            if request.transport is None or request.transport.is_closing():
                break
            if time.monotonic() - checked > SESSION_RECHECK_SECONDS:
                if not guard.still_allowed(request):
                    break  # its session ended: logout, a password change, the user removed
                checked = time.monotonic()
            for _camera, _seq, jpeg in frames:
                await response.write(b"--" + BOUNDARY.encode() + b"\r\nContent-Type: image/jpeg\r\n"
                                     b"Content-Length: " + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n")
    except (ConnectionResetError, ConnectionError):
        pass
    finally:
        feed.remove_viewer(outbox)
        hub.close_stream()
    return response
