"""Who may use the console.

* Without a token (the default) the server binds loopback only, and it answers only requests that name a
  loopback host, so a web page elsewhere cannot reach it by pointing a DNS name at 127.0.0.1.
* With ``[web] token`` every request but the login form and ``/api/health`` needs the token, as
  ``Authorization: Bearer TOKEN`` or as the session cookie the login form sets (derived from the token, so
  the cookie is not the token itself). A token in a URL is refused and never logged: the access log records
  the path without its query.
* Requests that change something, and WebSocket handshakes, must come from the console's own origin.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from emotiond.clients.web.responses import json_error
from emotiond.core.endpoints import is_exposed

log = logging.getLogger(__name__)
COOKIE = "emotiond_session"
OPEN_PATHS = {"/login", "/api/health"}
SECRET_PARAMS = {"token", "access_token", "auth", "password"}
LOGIN_FAILURES_PER_MINUTE = 10

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def session_value(token: str) -> str:
    return hmac.new(token.encode(), b"emotiond web session", hashlib.sha256).hexdigest()


def is_loopback_host(host_header: str) -> bool:
    """``localhost:8108``, ``127.0.0.1``, ``[::1]:8108``: a Host header that names this machine's loopback."""
    host = urlsplit(f"//{host_header}").hostname or ""
    return bool(host) and not is_exposed(f"tcp://{f'[{host}]' if ':' in host else host}:1")


def _wants_html(request: web.Request) -> bool:
    return not (request.path.startswith("/api/") or request.path == "/ws")


class Guard:
    """The request checks above, as one aiohttp middleware."""

    def __init__(self, token: str | None):
        self._token = token
        self._session = session_value(token) if token else None
        self._failures: deque[float] = deque()

    def authorized(self, request: web.Request) -> bool:
        if self._token is None:
            return True
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(credential.strip().encode(), self._token.encode()):
            return True
        cookie = request.cookies.get(COOKIE, "")
        return bool(cookie) and hmac.compare_digest(cookie.encode(), (self._session or "").encode())

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if SECRET_PARAMS & set(request.query):
            return json_error(400, "credentials are never accepted in a URL (they end up in logs and history); "
                                   "send 'Authorization: Bearer TOKEN' or use the login form")
        if self._token is None and not is_loopback_host(request.host):
            return json_error(403, "this console answers only requests to localhost or a loopback address "
                                   "(set [web] token to serve other names)")
        if not self._same_origin(request):
            return json_error(403, "cross-origin request refused")
        if request.path in OPEN_PATHS or self.authorized(request):
            return await handler(request)
        if _wants_html(request) and request.method == "GET":
            raise web.HTTPSeeOther("/login")
        return json_error(401, "authentication required: send 'Authorization: Bearer TOKEN'",
                          headers={"WWW-Authenticate": 'Bearer realm="emotiond"'})

    @staticmethod
    def _same_origin(request: web.Request) -> bool:
        websocket = request.headers.get("Upgrade", "").lower() == "websocket"
        if request.method in ("GET", "HEAD", "OPTIONS") and not websocket:
            return True
        origin = request.headers.get("Origin")
        if origin is None:
            return True  # scripts and curl send none; a browser always does for these requests
        return urlsplit(origin).netloc.lower() == request.host.lower()

    # ------------------------------------------------------------ login form
    def login_allowed(self) -> bool:
        now = time.monotonic()
        while self._failures and now - self._failures[0] > 60:
            self._failures.popleft()
        return len(self._failures) < LOGIN_FAILURES_PER_MINUTE

    def check_login(self, candidate: str, remote: str | None) -> bool:
        ok = self._token is not None and hmac.compare_digest(candidate.encode(), self._token.encode())
        if not ok:
            self._failures.append(time.monotonic())
            log.warning("failed login from %s", remote)
        return ok

    def session_cookie(self, response: web.StreamResponse) -> None:
        assert self._session is not None
        response.set_cookie(COOKIE, self._session, httponly=True, samesite="Strict", path="/")

    @property
    def enabled(self) -> bool:
        return self._token is not None


class PathAccessLogger(AbstractAccessLogger):
    """One line per request with the path only: a query string is never logged. Successful reads (the page polls,
    streams end) go at DEBUG so the daemon's log is not flooded; refusals, errors and changes at INFO."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        level = logging.DEBUG if request.method in ("GET", "HEAD") and response.status < 400 else logging.INFO
        self.logger.log(level, "%s %s %s %d %.1f ms", request.remote, request.method, request.path, response.status,
                        time * 1000)
