"""Who may use the console.

* With no user and no token (the default) the server binds loopback only, and it answers only requests that name a
  loopback host, so a web page elsewhere cannot reach it by pointing a DNS name at 127.0.0.1.
* Once a user exists (``emotiond web users add``) or ``[web] token`` is set, every request but the login form,
  ``/api/login`` and ``/api/health`` needs a session cookie (a random id the server keeps, so logout, a password
  change or removing the user ends it) or the token as ``Authorization: Bearer TOKEN`` (for scripts). A credential
  in a URL is refused and never logged: the access log records the path without its query, and the user.
* Requests that change something, and WebSocket handshakes, must come from the console's own origin.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from emotiond.clients.web.login_limit import LoginLimiter
from emotiond.clients.web.responses import json_error
from emotiond.clients.web.sessions import SessionStore
from emotiond.clients.web.users import MAX_PASSWORD, TOKEN_USER, UsersError, UserStore
from emotiond.core.endpoints import is_exposed

log = logging.getLogger(__name__)
COOKIE = "emotiond_session"
OPEN_PATHS = {"/login", "/api/login", "/api/health", "/privacy"}  # /privacy: the notice is for everyone filmed
SECRET_PARAMS = {"token", "access_token", "auth", "password", "session", COOKIE}
USER_KEY = web.RequestKey("user", str)  # who made the request, for the handlers and the access log
LOCAL_USER = "-"  # requests to a console without users or token (loopback only)
SESSION_RECHECK_SECONDS = 5.0  # a stream or WebSocket whose session ended (logout, new password...) ends this fast

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_loopback_host(host_header: str) -> bool:
    """``localhost:8108``, ``127.0.0.1``, ``[::1]:8108``: a Host header that names this machine's loopback."""
    host = urlsplit(f"//{host_header}").hostname or ""
    return bool(host) and not is_exposed(f"tcp://{f'[{host}]' if ':' in host else host}:1")


def _wants_html(request: web.Request) -> bool:
    return not (request.path.startswith("/api/") or request.path == "/ws")


class Guard:
    """The request checks above, as one aiohttp middleware, and the logins and sessions behind them."""

    def __init__(self, token: str | None, users: UserStore, sessions: SessionStore, session_hours: float,
                 secure_cookie: bool):
        self._token = token
        self.users = users
        self.sessions = sessions
        self.session_hours = session_hours
        self.secure_cookie = secure_cookie
        self.limiter = LoginLimiter()
        self.failed_logins = 0
        self._users_error_logged = False

    @property
    def enabled(self) -> bool:
        """Whether requests need a login: there is a token or a user (an unreadable users file counts as users,
        so a broken file locks the console rather than opening it)."""
        if self._token is not None:
            return True
        try:
            return bool(self.users.users())
        except UsersError as exc:
            if not self._users_error_logged:
                log.error("%s", exc)
                self._users_error_logged = True
            return True

    def _is_token(self, candidate: str) -> bool:
        return self._token is not None and hmac.compare_digest(candidate.encode(), self._token.encode())

    def user_of(self, request: web.Request) -> str | None:
        """Who the request's credential names: the token's bearer, a live session's user, or None."""
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self._is_token(credential.strip()):
            return TOKEN_USER
        session_id = request.cookies.get(COOKIE, "")
        user = self.sessions.user_of(session_id, self._token) if session_id else None
        if user is None:
            return None
        try:
            # a token session is bound to the token (checked above); a user's ends with the user
            still_valid = self._token is not None if user == TOKEN_USER else self.users.exists(user)
        except UsersError:
            still_valid = False
        return user if still_valid else None

    def still_allowed(self, request: web.Request) -> bool:
        """Whether a long-lived request (a stream, a WebSocket) may go on: its session or token is still good. Its
        user is removed, its password changed or it logs out elsewhere, and the stream ends."""
        return not self.enabled or self.user_of(request) is not None

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if SECRET_PARAMS & {key.lower() for key in request.query}:
            return json_error(400, "credentials are never accepted in a URL (they end up in logs and history); "
                                   "send 'Authorization: Bearer TOKEN' or log in")
        enabled = self.enabled
        if not enabled and not is_loopback_host(request.host):
            return json_error(403, "this console answers only requests to localhost or a loopback address "
                                   "(add a user or set [web] token to serve other names)")
        if not self._same_origin(request):
            return json_error(403, "cross-origin request refused")
        user = self.user_of(request) if enabled else LOCAL_USER
        if user is not None:
            request[USER_KEY] = user
        if request.path in OPEN_PATHS or user is not None:
            return await handler(request)
        if _wants_html(request) and request.method == "GET":
            raise web.HTTPSeeOther("/login")
        return json_error(401, "authentication required: log in (POST /api/login) or send "
                               "'Authorization: Bearer TOKEN'",
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

    # ------------------------------------------------------------ logins
    async def check_login(self, name: str, password: str, remote: str) -> bool:
        """Whether ``password`` is ``name``'s (or, for the name ``token``, the token); failures are counted
        against ``remote`` and logged with the name, never the password."""
        password = password[:MAX_PASSWORD]
        if name == TOKEN_USER:
            ok = self._is_token(password)
        else:
            try:
                ok = await asyncio.get_running_loop().run_in_executor(None, self.users.check, name, password)
            except UsersError as exc:
                log.error("%s", exc)
                ok = False
        if ok:
            log.info("web login: %s from %s", name, remote)
        else:
            self.failed_logins += 1
            self.limiter.failed(remote)
            known = name == TOKEN_USER or self._known(name)
            # an unknown name is not logged: it may be a password typed into the wrong field
            log.warning("web login failed: %s from %s", name if known else "(unknown user)", remote)
        return ok

    def _known(self, name: str) -> bool:
        try:
            return self.users.exists(name)
        except UsersError:
            return False

    def start_session(self, request: web.Request, response: web.StreamResponse, user: str) -> float:
        """A new session for ``user`` in a cookie on ``response`` (any session the request had ends: a login
        never reuses an id); when it expires, in Unix seconds."""
        old = request.cookies.get(COOKIE)
        if old:
            self.sessions.end(old)
        session_id, expires = self.sessions.create(user, self.session_hours,
                                                   self._token if user == TOKEN_USER else None)
        request[USER_KEY] = user
        response.set_cookie(COOKIE, session_id, httponly=True, samesite="Strict", path="/",
                            secure=self.secure_cookie, max_age=round(self.session_hours * 3600))
        return expires

    def end_session(self, request: web.Request, response: web.StreamResponse) -> bool:
        """End the request's session, if it has one, and clear its cookie."""
        user = self.sessions.end(request.cookies.get(COOKIE, ""))
        response.del_cookie(COOKIE, path="/")
        if user is not None:
            log.info("web logout: %s", user)
        return user is not None


class PathAccessLogger(AbstractAccessLogger):
    """One line per request with the path only: a query string is never logged. Successful reads (the page polls,
    streams end) go at DEBUG so the daemon's log is not flooded; refusals, errors and changes at INFO."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        level = logging.DEBUG if request.method in ("GET", "HEAD") and response.status < 400 else logging.INFO
        self.logger.log(level, "%s %s %s %s %d %.1f ms", request.remote, request.get(USER_KEY, "?"), request.method,
                        request.path, response.status, time * 1000)
