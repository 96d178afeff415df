"""Logging in and out through the JSON API (``/api/login``, ``/api/logout``), and the checks the page's form
shares with it. Each login makes a new session; each logout ends one server-side."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from emotiond.clients.web.auth import Guard
from emotiond.clients.web.context import GUARD
from emotiond.clients.web.responses import JSON_TYPE, json_error
from emotiond.clients.web.users import MAX_PASSWORD

MAX_NAME = 64
FORM_TYPE = "application/x-www-form-urlencoded"


def remote_of(request: web.Request) -> str:
    return request.remote or "unknown"


def too_many(guard: Guard, request: web.Request) -> web.Response | None:
    wait = guard.limiter.retry_after(remote_of(request))
    if wait is None:
        return None
    return json_error(429, f"too many failed logins from {remote_of(request)}; try again in {wait} s",
                      headers={"Retry-After": str(wait)})


def credentials_of(data: Any) -> tuple[str, str] | None:
    if not isinstance(data, dict) or set(data) != {"user", "password"}:
        return None
    user, password = data["user"], data["password"]
    if not isinstance(user, str) or not isinstance(password, str):
        return None
    if not 1 <= len(user) <= MAX_NAME or not 1 <= len(password) <= MAX_PASSWORD:
        return None
    return user, password


def no_login(guard: Guard) -> web.Response | None:
    if guard.enabled:
        return None
    return json_error(409, "this console has no users and no token, so there is nothing to log in to "
                           "(emotiond web users add NAME)")


async def api_login(request: web.Request) -> web.Response:
    """JSON ``{"user", "password"}``: ``{"user", "expires_at"}`` and a session cookie."""
    guard = request.app[GUARD]
    refused = no_login(guard) or too_many(guard, request)
    if refused is not None:
        return refused
    if request.content_type != "application/json":
        return json_error(415, 'send JSON: {"user": NAME, "password": PASSWORD}')
    try:
        data = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        data = None
    credentials = credentials_of(data)
    if credentials is None:
        return json_error(400, f'send {{"user": NAME, "password": PASSWORD}}: a name of 1 to {MAX_NAME} and a '
                               f"password of 1 to {MAX_PASSWORD} characters")
    if not await guard.check_login(*credentials, remote_of(request)):
        return json_error(401, "wrong user name or password")
    response = web.Response(content_type=JSON_TYPE)
    expires = guard.start_session(request, response, credentials[0])
    response.text = json.dumps({"user": credentials[0], "expires_at": round(expires, 3)})
    return response


async def api_logout(request: web.Request) -> web.Response:
    """End this request's session: its cookie gets 401 from now on. ``{"ended": false}`` when there was none."""
    response = web.Response(content_type=JSON_TYPE)
    response.text = json.dumps({"ended": request.app[GUARD].end_session(request, response)})
    return response
