"""The console's one error body, ``{"error": MESSAGE, "status": CODE}`` as JSON, whether a handler returns it or
raises it from deep inside."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

JSON_TYPE = "application/json"


def error_body(status: int, message: str) -> dict[str, Any]:
    """Keyword arguments of an aiohttp response or HTTP exception that carry the JSON error body."""
    return {"text": json.dumps({"error": message, "status": status}), "content_type": JSON_TYPE}


def json_error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, headers=headers, **error_body(status, message))
