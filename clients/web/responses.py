"""The console's one error body, ``{"error": MESSAGE, "status": CODE}`` as JSON, whether a handler returns it or
raises it from deep inside, or aiohttp itself answers (no such route, a method the route lacks, a body too large)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

JSON_TYPE = "application/json"


def error_body(status: int, message: str) -> dict[str, Any]:
    """Keyword arguments of an aiohttp response or HTTP exception that carry the JSON error body."""
    return {"text": json.dumps({"error": message, "status": status}), "content_type": JSON_TYPE}


def json_error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, headers=headers, **error_body(status, message))


@web.middleware
async def json_errors(request: web.Request,
                      handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """aiohttp's own plain-text errors as the JSON error body (keeping headers such as Allow)."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == JSON_TYPE:
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() not in ("content-type", "content-length")}
        return json_error(exc.status, exc.reason.lower(), headers=headers)
