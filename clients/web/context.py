"""What every request handler of the console shares: the application's parts, query parameter parsing, and
the camera a path names. Bad parameters raise a JSON 400 that says which parameter and why."""

from __future__ import annotations

import math
import re

from aiohttp import web

from emotiond.clients.web.analysis import PhotoAnalysis
from emotiond.clients.web.auth import Guard
from emotiond.clients.web.feeds import CameraFeed
from emotiond.clients.web.hub import Hub
from emotiond.clients.web.responses import error_body
from emotiond.core.protocol import CAMERA_NAME_RE
from emotiond.core.settings import Settings

HUB = web.AppKey("hub", Hub)
GUARD = web.AppKey("guard", Guard)
ANALYSIS = web.AppKey("analysis", PhotoAnalysis)
SETTINGS = web.AppKey("settings", Settings)
STATIC = web.AppKey("static", dict)
STATS_CACHE = web.AppKey("stats_cache", dict)


class BadParameter(web.HTTPBadRequest):
    def __init__(self, message: str):
        super().__init__(**error_body(self.status_code, message))


def number(request: web.Request, key: str, default: float | None, low: float, high: float) -> float | None:
    text = request.query.get(key)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise BadParameter(f"{key} must be a number, got {text[:40]!r}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise BadParameter(f"{key} must be between {low:g} and {high:g}, got {text[:40]!r}")
    return value


def integer(request: web.Request, key: str, default: int | None, low: int, high: int) -> int | None:
    text = request.query.get(key)
    if text is None:
        return default
    if not re.fullmatch(r"\d{1,9}", text):
        raise BadParameter(f"{key} must be a whole number from {low} to {high}, got {text[:40]!r}")
    value = int(text)
    if not low <= value <= high:
        raise BadParameter(f"{key} must be a whole number from {low} to {high}, got {value}")
    return value


def camera_name(request: web.Request) -> str:
    name = request.match_info["camera"]
    if not CAMERA_NAME_RE.match(name):
        raise BadParameter(f"bad camera name {name[:70]!r}")
    return name


def feed_of(request: web.Request) -> CameraFeed:
    name = camera_name(request)
    feed = request.app[HUB].feed(name)
    if feed is None:
        raise web.HTTPNotFound(**error_body(web.HTTPNotFound.status_code, f"unknown camera {name!r}"))
    return feed
