"""The console's HTTP surface: the page and its login, and the table of every route.

Cameras live under their own prefix: ``/api/cameras/<camera>/stream`` is an MJPEG stream,
``/api/cameras/<camera>/latest.jpg`` the newest frame; ``/api/events`` and ``/api/stats`` are JSON. No route is a
catch-all, so a path that is not in the table (a route added without its OpenAPI entry, a typo) is a JSON 404, never
a camera. Every bad input gets a JSON error with a 4xx status.
"""

from __future__ import annotations

import html
import json
from importlib.resources import files

from aiohttp import web

from emotiond.clients.web import history_api, json_api, media, openapi, sockets, upload
from emotiond.clients.web import login as login_api
from emotiond.clients.web.context import GUARD, SETTINGS, STATIC
from emotiond.clients.web.responses import json_error

STATIC_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
# The page runs only its own script, shows frames from blob: URLs and uploads as data: URLs, talks only to this
# server, and may not be framed by another site.
PAGE_POLICY = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; "
               "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")


COLORS_PLACEHOLDER = b"__EMOTION_COLORS__"  # where a page takes the overlay's emotion colours (an HTML attribute)


def load_static() -> dict[str, bytes]:
    """The page's files, shipped as package data; a page that names the emotion colours gets them filled in, so
    its charts use the overlay's colours without asking for them."""
    folder = files("emotiond.clients.web").joinpath("static")
    found = {entry.name: entry.read_bytes() for entry in folder.iterdir()
             if entry.is_file() and any(entry.name.endswith(suffix) for suffix in STATIC_TYPES)}
    colors = html.escape(json.dumps(sockets.EMOTION_CSS), quote=True).encode()
    return {name: body.replace(COLORS_PLACEHOLDER, colors) if name.endswith(".html") else body
            for name, body in found.items()}


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


async def history_page(request: web.Request) -> web.Response:
    return _static(request, "history.html")


async def static_file(request: web.Request) -> web.Response:
    return _static(request, request.match_info["name"])


async def privacy_notice(request: web.Request) -> web.Response:
    """The privacy notice (``emotiond privacy notice --format html``), open to anyone: it is for the people filmed."""
    from emotiond.clients.privacy.notice import build_notice, render_html

    page = render_html(build_notice(request.app[SETTINGS]))
    return web.Response(text=page, content_type="text/html", charset="utf-8",
                        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff",
                                 "Content-Security-Policy": PAGE_POLICY})


async def login_form(request: web.Request) -> web.StreamResponse:
    if not request.app[GUARD].enabled:
        raise web.HTTPSeeOther("/")
    return _static(request, "login.html")


async def login(request: web.Request) -> web.StreamResponse:
    """The form: user and password; a redirect to the page with a session cookie, or the form again (401)."""
    guard = request.app[GUARD]
    refused = login_api.no_login(guard) or login_api.too_many(guard, request)
    if refused is not None:
        return refused
    if request.content_type != login_api.FORM_TYPE:
        return json_error(415, f"send the login form ({login_api.FORM_TYPE})")
    form = await request.post()
    credentials = login_api.credentials_of({key: form.get(key) for key in ("user", "password")})
    if credentials is None or not await guard.check_login(*credentials, login_api.remote_of(request)):
        response = _static(request, "login.html")
        response.set_status(401)
        return response
    response = web.HTTPSeeOther("/")
    guard.start_session(request, response, credentials[0])
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    response = web.HTTPSeeOther("/login")
    request.app[GUARD].end_session(request, response)
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/history", history_page)
    app.router.add_get("/privacy", privacy_notice)
    app.router.add_get("/static/{name}", static_file)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/ws", sockets.websocket)
    app.router.add_post("/api/login", login_api.api_login)
    app.router.add_post("/api/logout", login_api.api_logout)
    app.router.add_get("/api/openapi.json", openapi.serve)
    app.router.add_get("/api/health", json_api.health)
    app.router.add_get("/api/cameras", json_api.cameras)
    app.router.add_get("/api/events", json_api.events)
    app.router.add_get("/api/stats", json_api.stats_view)
    app.router.add_post("/api/analyze", upload.analyze)
    app.router.add_get("/api/cameras/{camera}/latest.jpg", media.latest_jpg)
    app.router.add_get("/api/cameras/{camera}/stream", media.mjpeg)
    history_api.add_routes(app)
