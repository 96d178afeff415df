"""The history over HTTP: ``/api/history/summary``, ``tracks``, ``tracks/{id}``, ``events`` and ``markers``, and
``POST /api/markers``.

Parameters mean what the CLI's flags mean (``since``/``until`` as ``2h``, an ISO time or Unix seconds, through
``history.times``); every answer is the dict ``history.queries`` returns, so the CLI, the API and the page agree.
Lists page by ``before`` (the ``next_before`` of the previous page), never by offset. A bad parameter is a 400 with
the console's JSON error body; no database yet is an empty answer.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from aiohttp import web

from emotiond.clients.history import markers as history_markers
from emotiond.clients.history import queries
from emotiond.clients.history.times import TimeError, parse_duration, parse_time
from emotiond.clients.web.context import BadParameter, integer, number
from emotiond.clients.web.history_access import HistoryAccess, HistoryDownError
from emotiond.clients.web.responses import json_error
from emotiond.core.errors import UsageError
from emotiond.core.protocol import CAMERA_NAME_RE

HISTORY = web.AppKey("history", HistoryAccess)
MAX_TIME_TEXT = 64
MAX_BEFORE = 1e11  # Unix seconds, as /api/events takes them
BUCKET_PATTERN = r"^[1-9][0-9]{0,8}[smhdw]?$"  # seconds, or a duration such as 5m, 1h, 1d
BUCKET_RE = re.compile(BUCKET_PATTERN)
TRACK_ID_MAX = 2**53  # row ids as JSON numbers stay exact below this
MAX_MARKER_BODY = 4096
MARKER_KEYS = {"label", "camera", "t"}


# ---------------------------------------------------------------- parameters

def camera_of(request: web.Request) -> str | None:
    camera = request.query.get("camera")
    if camera is not None and not CAMERA_NAME_RE.match(camera):
        raise BadParameter(f"bad camera name {camera[:70]!r}")
    return camera


def time_of(request: web.Request, key: str, now: float) -> float | None:
    """``since``/``until``: ``2h`` (ago), ``now``, an ISO 8601 time (UTC unless it has an offset) or Unix seconds."""
    text = request.query.get(key)
    if text is None:
        return None
    if not 1 <= len(text) <= MAX_TIME_TEXT:
        raise BadParameter(f"{key} must be 1 to {MAX_TIME_TEXT} characters (like 2h, 2026-05-01T14:00 or Unix "
                           "seconds)")
    try:
        return parse_time(text, now, key)
    except TimeError as error:
        raise BadParameter(str(error)) from None


def bucket_of(request: web.Request) -> float:
    text = request.query.get("bucket")
    if text is None:
        return queries.DEFAULT_BUCKET
    if not BUCKET_RE.match(text):
        raise BadParameter(f"bucket must be whole seconds or a duration like 5m, 1h, 1d; got {text[:40]!r}")
    try:
        return parse_duration(text, "bucket")
    except TimeError as error:
        raise BadParameter(str(error)) from None


def window_of(request: web.Request) -> dict[str, Any]:
    now = time.time()
    return {"camera": camera_of(request), "since": time_of(request, "since", now),
            "until": time_of(request, "until", now)}


def paging_of(request: web.Request) -> dict[str, Any]:
    return {"before": number(request, "before", None, 0, MAX_BEFORE),
            "limit": integer(request, "limit", queries.DEFAULT_LIMIT, 1, queries.MAX_LIMIT)}


async def _answer(request: web.Request, query: Any, empty: Any, **arguments: Any) -> web.Response:
    """The query's dict as JSON; its own refusals (a window backwards, too many buckets) as 400."""
    try:
        found = await request.app[HISTORY].read(query, empty, **arguments)
    except UsageError as error:
        raise BadParameter(str(error)) from None
    except HistoryDownError as error:
        return json_error(503, str(error), headers={"Retry-After": "5"})
    return web.json_response(found)


# ---------------------------------------------------------------- what an empty history answers

def _no_summary(camera: str | None, since: float | None, until: float | None,
                bucket_seconds: float) -> dict[str, Any]:
    """The summary of a history that does not exist yet: every bucket there, with no frames (coverage None)."""
    since, until = queries.window(since, until)
    bucket = queries.check_bucket(bucket_seconds, since, until)
    cameras = queries.fold_minutes([], since, until, bucket, (camera,) if camera is not None else ())
    return {"since": since, "until": until, "bucket_seconds": bucket, "zone": "",
            "valence_formula": queries.VALENCE_FORMULA, "cameras": cameras, "markers": []}


def _no_rows(key: str, since: float | None, until: float | None, limit: int | None = None) -> dict[str, Any]:
    queries.window(since, until)
    if limit is not None:
        queries.check_limit(limit)
        return {key: [], "next_before": None}
    return {key: []}


# ---------------------------------------------------------------- handlers

async def summary(request: web.Request) -> web.Response:
    """Emotion shares, valence and coverage per bucket per camera, with the window's markers."""
    arguments = {**window_of(request), "bucket_seconds": bucket_of(request)}
    return await _answer(request, queries.summary, lambda: _no_summary(**arguments), **arguments)


async def tracks(request: web.Request) -> web.Response:
    arguments = {**window_of(request), **paging_of(request)}
    return await _answer(request, queries.tracks,
                         lambda: _no_rows("tracks", arguments["since"], arguments["until"], arguments["limit"]),
                         **arguments)


async def track(request: web.Request) -> web.Response:
    """One track's timeline: its summary, samples and events."""
    text = request.match_info["id"]
    if not re.fullmatch(r"[0-9]{1,16}", text) or not 1 <= int(text) <= TRACK_ID_MAX:
        raise BadParameter(f"a track id is a whole number from 1 to {TRACK_ID_MAX}, got {text[:40]!r}")
    try:
        found = await request.app[HISTORY].read(queries.track, lambda: None, track_id=int(text))
    except HistoryDownError as error:
        return json_error(503, str(error), headers={"Retry-After": "5"})
    if found is None:
        return json_error(404, f"no track {text} (never kept, purged by retention, or forgotten)")
    return web.json_response(found)


async def events(request: web.Request) -> web.Response:
    arguments = {**window_of(request), **paging_of(request)}
    return await _answer(request, queries.events,
                         lambda: _no_rows("events", arguments["since"], arguments["until"], arguments["limit"]),
                         **arguments)


async def markers(request: web.Request) -> web.Response:
    arguments = window_of(request)
    return await _answer(request, queries.markers,
                         lambda: _no_rows("markers", arguments["since"], arguments["until"]), **arguments)


async def add_marker(request: web.Request) -> web.Response:
    """JSON ``{"label", "camera" (optional, none: every camera), "t" (optional Unix seconds, default now)}``:
    the marker kept, with its id (201)."""
    if request.content_type != "application/json":
        return json_error(415, 'send JSON: {"label": TEXT, "camera": NAME (optional), "t": UNIX_SECONDS (optional)}')
    body = await request.content.read(MAX_MARKER_BODY + 1)
    if len(body) > MAX_MARKER_BODY:
        return json_error(413, f"a marker is at most {MAX_MARKER_BODY} bytes of JSON")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadParameter("the body is not JSON") from None
    if not isinstance(data, dict) or "label" not in data or set(data) - MARKER_KEYS:
        raise BadParameter('send {"label": TEXT, "camera": NAME (optional), "t": UNIX_SECONDS (optional)}')
    camera, t = data.get("camera"), data.get("t")
    if camera is not None and (not isinstance(camera, str) or not CAMERA_NAME_RE.match(camera)):
        raise BadParameter(f"bad camera name {str(camera)[:70]!r}")
    if t is not None and (isinstance(t, bool) or not isinstance(t, int | float) or not 0 <= t <= MAX_BEFORE):
        raise BadParameter(f"t must be Unix seconds from 0 to {MAX_BEFORE:g}")
    try:
        row = history_markers.check_marker(data["label"], camera, t, "api")
        marker_id = await request.app[HISTORY].write(history_markers.add_marker, label=row["label"],
                                                     camera=row["camera"], t=row["t"], source="api")
    except UsageError as error:
        raise BadParameter(str(error)) from None
    except HistoryDownError as error:
        return json_error(503, str(error), headers={"Retry-After": "5"})
    return web.json_response({"id": marker_id, **row}, status=201)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/history/summary", summary)
    app.router.add_get("/api/history/tracks", tracks)
    app.router.add_get("/api/history/tracks/{id}", track)
    app.router.add_get("/api/history/events", events)
    app.router.add_get("/api/history/markers", markers)
    app.router.add_post("/api/markers", add_marker)
