"""The console's HTTP surface: the page and its login, and the table of every route.

Conventions follow Frigate where they fit: ``/api/<camera>`` is an MJPEG stream, ``/api/<camera>/latest.jpg``
the newest frame, ``/api/events`` and ``/api/stats`` JSON. Every bad input gets a JSON error with a 4xx status.
"""

from __future__ import annotations

from importlib.resources import files

from aiohttp import web

from emotiond.clients.web import json_api, media, sockets, upload
from emotiond.clients.web.context import GUARD, STATIC
from emotiond.clients.web.responses import json_error

STATIC_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
# The page runs only its own script, shows frames from blob: URLs and uploads as data: URLs, talks only to this
# server, and may not be framed by another site.
PAGE_POLICY = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; "
               "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")


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
    headers = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    if suffix == ".html":
        headers["Content-Security-Policy"] = PAGE_POLICY
    return web.Response(body=body, content_type=STATIC_TYPES[suffix], charset="utf-8", headers=headers)


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


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static_file)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/ws", sockets.websocket)
    app.router.add_get("/api/health", json_api.health)
    app.router.add_get("/api/cameras", json_api.cameras)
    app.router.add_get("/api/events", json_api.events)
    app.router.add_get("/api/stats", json_api.stats_view)
    app.router.add_post("/api/analyze", upload.analyze)
    app.router.add_get("/api/analyze", upload.post_only)  # not a camera called "analyze"
    app.router.add_get("/api/{camera}/latest.jpg", media.latest_jpg)
    app.router.add_get("/api/{camera}", media.mjpeg)
