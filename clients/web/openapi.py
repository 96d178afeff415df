"""The console's contract: an OpenAPI 3.1 document of every route, served at ``/api/openapi.json``.

``mismatches(app)`` compares it with the application's real route table, so a route added without its entry (or an
entry left after its route went) fails the tests; the tests also validate every response they get against it, and
fuzz the live console from it with schemathesis.
"""

from __future__ import annotations

import functools
from typing import Any

from aiohttp import web

from emotiond.clients.history.markers import MAX_LABEL, SOURCES
from emotiond.clients.history.queries import MAX_LIMIT
from emotiond.clients.web.auth import COOKIE
from emotiond.clients.web.history_api import BUCKET_PATTERN, MAX_BEFORE, MAX_TIME_TEXT, TRACK_ID_MAX
from emotiond.clients.web.json_api import EMOTION_RE, MAX_EVENTS_LIMIT
from emotiond.clients.web.media import MAX_HEIGHT, MIN_HEIGHT
from emotiond.clients.web.ring import TOPICS
from emotiond.clients.web.users import MAX_PASSWORD
from emotiond.core.protocol import CAMERA_NAME_PATTERN

OPEN = {"security": []}  # an operation anyone may call
NUMBER_OR_NULL = {"type": ["number", "null"]}
IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp", "image/bmp")


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}


def _json(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


CAMERA_PATH = {"name": "camera", "in": "path", "required": True,
               "description": "camera name, as /api/cameras lists it",
               "schema": {"type": "string", "pattern": CAMERA_NAME_PATTERN}}
HEIGHT = _query("height", {"type": "integer", "minimum": MIN_HEIGHT, "maximum": MAX_HEIGHT},
                "scale the frame down to this height (rounded to 40 px, never up)")
COMMON = {"400": _error("bad parameter, or a credential in the URL"),
          "403": _error("another origin, or (without users) a non-loopback Host")}
AUTHENTICATED = {**COMMON, "401": _error("no valid session or token")}
STREAM_BUSY = _error("too many streams and WebSockets open ([web] max_streams); Retry-After says when to retry")
HTML = {"text/html": {"schema": {"type": "string"}}}
SEE_OTHER = {"description": "redirect (to /login when not logged in)",
             "headers": {"Location": {"schema": {"type": "string"}}}}
CREDENTIALS = {"type": "object", "additionalProperties": False, "required": ["user", "password"], "properties": {
    "user": {"type": "string", "minLength": 1, "maxLength": 64},
    "password": {"type": "string", "minLength": 1, "maxLength": MAX_PASSWORD}}}
TOO_MANY = {"description": "too many failed logins from this address", "headers": {
    "Retry-After": {"schema": {"type": "string", "pattern": r"^\d+$"}}},
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}

STRING_OR_NULL = {"type": ["string", "null"]}
LABEL_SECONDS = {"type": "object", "additionalProperties": {"type": "number", "minimum": 0}}
HISTORY_TRACK = {"type": "object", "required": [
    "id", "camera", "track_id", "worker", "first_seen", "last_seen", "duration", "end_reason", "dominant",
    "mean_scores", "mean_valence", "samples", "coverage", "model"], "properties": {
    "id": {"type": "integer", "minimum": 1}, "camera": {"type": "string"}, "track_id": {"type": "integer"},
    "worker": STRING_OR_NULL, "first_seen": {"type": "number"}, "last_seen": NUMBER_OR_NULL,
    "duration": NUMBER_OR_NULL, "end_reason": STRING_OR_NULL, "dominant": STRING_OR_NULL,
    "mean_scores": {"type": "object", "additionalProperties": {"type": "number"}},
    "mean_valence": {"type": ["number", "null"], "minimum": -1, "maximum": 1},
    "samples": {"type": ["integer", "null"], "minimum": 0},
    "coverage": {"type": ["number", "null"], "minimum": 0, "maximum": 1}, "model": STRING_OR_NULL}}
HISTORY_EVENT = {"type": "object", "required": ["id", "track", "camera", "t", "kind", "emotion", "previous", "reason",
                                                "confidence"], "properties": {
    "id": {"type": "integer"}, "track": {"type": "integer"}, "camera": {"type": "string"}, "t": {"type": "number"},
    "kind": {"enum": ["appeared", "changed", "disappeared"]}, "emotion": STRING_OR_NULL, "previous": STRING_OR_NULL,
    "reason": STRING_OR_NULL, "confidence": NUMBER_OR_NULL}}
HISTORY_SCHEMAS: dict[str, Any] = {
    "HistoryBucket": {"type": "object", "required": ["start", "faces", "face_seconds", "shares", "valence",
                                                     "coverage", "frames_analysed", "frames_missed"], "properties": {
        "start": {"type": "number"}, "faces": {"type": "integer", "minimum": 0}, "face_seconds": LABEL_SECONDS,
        "shares": {"type": "object", "additionalProperties": {"type": "number", "minimum": 0, "maximum": 1}},
        "valence": {"type": ["number", "null"], "minimum": -1, "maximum": 1,
                    "description": "mean valence weighted by face-seconds; null without faces"},
        "coverage": {"type": ["number", "null"], "minimum": 0, "maximum": 1,
                     "description": "frames analysed / (analysed + missed); null when no frame came (a gap)"},
        "frames_analysed": {"type": "integer", "minimum": 0}, "frames_missed": {"type": "integer", "minimum": 0}}},
    "Marker": {"type": "object", "required": ["id", "t", "camera", "label", "source"], "properties": {
        "id": {"type": "integer", "minimum": 1}, "t": {"type": "number"},
        "camera": {"type": ["string", "null"], "description": "null: every camera"},
        "label": {"type": "string"}, "source": {"enum": list(SOURCES)}}},
    "HistorySummary": {"type": "object", "required": ["since", "until", "bucket_seconds", "valence_formula",
                                                      "cameras", "markers"], "properties": {
        "since": {"type": "number"}, "until": {"type": "number"}, "bucket_seconds": {"type": "integer", "minimum": 60},
        "zone": {"type": "string"}, "valence_formula": {"type": "string"},
        "cameras": {"type": "object", "additionalProperties": {"type": "array", "items": _ref("HistoryBucket")}},
        "markers": {"type": "array", "items": _ref("Marker")}}},
    "HistoryTrack": HISTORY_TRACK,
    "HistoryTracks": {"type": "object", "required": ["tracks", "next_before"], "properties": {
        "tracks": {"type": "array", "items": _ref("HistoryTrack")}, "next_before": NUMBER_OR_NULL}},
    "HistoryEvent": HISTORY_EVENT,
    "HistoryEvents": {"type": "object", "required": ["events", "next_before"], "properties": {
        "events": {"type": "array", "items": _ref("HistoryEvent")}, "next_before": NUMBER_OR_NULL}},
    "HistoryTimeline": {"type": "object", "required": ["track", "samples", "events"], "properties": {
        "track": _ref("HistoryTrack"),
        "samples": {"type": "array", "items": {"type": "object", "required": ["t", "emotion", "confidence", "valence",
                                                                             "scores"], "properties": {
            "t": {"type": "number"}, "emotion": {"type": "string"}, "confidence": NUMBER_OR_NULL,
            "valence": {"type": ["number", "null"], "minimum": -1, "maximum": 1},
            "scores": {"type": "object", "additionalProperties": {"type": "number"}}}}},
        "events": {"type": "array", "items": _ref("HistoryEvent")}}},
    "Markers": {"type": "object", "required": ["markers"], "properties": {
        "markers": {"type": "array", "items": _ref("Marker")}}},
    "NewMarker": {"type": "object", "required": ["label"], "additionalProperties": False, "properties": {
        "label": {"type": "string", "minLength": 1, "maxLength": MAX_LABEL},
        "camera": {"oneOf": [{"type": "null"}, {"type": "string", "pattern": CAMERA_NAME_PATTERN}],
                   "description": "the camera it concerns; absent or null: every camera"},
        "t": {"oneOf": [{"type": "null"}, {"type": "number", "minimum": 0, "maximum": MAX_BEFORE}],
              "description": "Unix seconds; absent or null: now"}}},
}

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error", "status"], "additionalProperties": False,
              "properties": {"error": {"type": "string"}, "status": {"type": "integer", "minimum": 400}}},
    "Health": {"type": "object", "required": ["status", "uptime_s", "cameras", "results_received"],
               "properties": {"status": {"const": "ok"}, "uptime_s": {"type": "number", "minimum": 0},
                              "cameras": {"type": "integer", "minimum": 0},
                              "results_received": {"type": "integer", "minimum": 0}}},
    "Camera": {"type": "object", "required": ["name", "frame_size", "fps", "status", "status_message", "viewers",
                                              "watched", "emotion", "message"],
               "properties": {"name": {"type": "string"},
                              "frame_size": {"oneOf": [{"type": "null"}, {"type": "array", "items": {
                                  "type": "integer"}, "minItems": 2, "maxItems": 2}]},
                              "fps": {"type": "number", "minimum": 0}, "status": {"type": "string"},
                              "status_message": {"type": "string"}, "viewers": {"type": "integer", "minimum": 0},
                              "watched": {"type": "boolean"}, "emotion": {"type": ["string", "null"]},
                              "message": {"type": ["string", "null"]}}},
    "Cameras": {"type": "object", "required": ["cameras"],
                "properties": {"cameras": {"type": "array", "items": _ref("Camera")}}},
    "Face": {"type": "object", "required": ["box", "emotion", "confidence", "scores"],
             "properties": {"box": {"type": "array", "items": {"type": "integer"}, "minItems": 4, "maxItems": 4},
                            "emotion": {"type": "string"}, "confidence": {"type": "number"},
                            "scores": {"type": "object", "additionalProperties": {"type": "number"}},
                            "track_id": {"type": "integer"}, "smoothed_emotion": {"type": "string"},
                            "smoothed_confidence": {"type": "number"},
                            "landmarks": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}}}},
    "Result": {"type": "object", "description": "a result in the event schema (docs/protocol.md)",
               "required": ["v", "camera", "seq", "captured_at", "published_at", "frame_size", "faces",
                            "latency_ms", "worker", "model"],
               "properties": {"v": {"type": "integer"}, "camera": {"type": "string"}, "seq": {"type": "integer"},
                              "captured_at": {"type": "number"}, "published_at": {"type": "number"},
                              "frame_size": {"type": "array", "items": {"type": "integer"}},
                              "faces": {"type": "array", "items": _ref("Face")},
                              "latency_ms": {"type": "object", "additionalProperties": {"type": "number"}},
                              "worker": {"type": "string"}, "model": {"type": "string"}}},
    "Events": {"type": "object", "required": ["events", "count"], "properties": {
        "count": {"type": "integer", "minimum": 0},
        "events": {"type": "array", "items": {"type": "object", "required": ["topic", "payload"], "properties": {
            "topic": {"enum": list(TOPICS)}, "payload": {"type": "object", "required": ["camera"]}}}}}},
    "Stats": {"type": "object", "required": ["cameras", "metrics", "web"], "properties": {
        "cameras": {"type": "object", "additionalProperties": {
            "type": "object", "required": ["fps", "status"], "properties": {
                "fps": {"type": "number", "minimum": 0}, "status": {"type": "string"},
                "frames_captured": {"type": "integer"}, "frames_processed": {"type": "integer"},
                "faces_detected": {"type": "integer"}, "source_up": {"type": "integer"},
                "frames_dropped": {"type": "object", "additionalProperties": {"type": "integer"}},
                "drop_rate": {"type": "number", "minimum": 0},
                "drop_rate_recent": {"type": "number", "minimum": 0, "maximum": 1},
                "latency_ms": {"type": "object", "additionalProperties": NUMBER_OR_NULL},
                "web": {"type": "object"}}}},
        "metrics": {"oneOf": [{"type": "null"}, {"type": "object", "required": ["samples", "age_s"], "properties": {
            "samples": {"type": "integer", "minimum": 0}, "age_s": {"type": "number", "minimum": 0}}}]},
        "web": {"type": "object", "required": ["streams", "max_streams", "results_received"]}}},
    "Analysis": {"type": "object", "required": ["result", "emotion", "message", "image"], "properties": {
        "result": _ref("Result"), "emotion": {"type": ["string", "null"]}, "message": {"type": ["string", "null"]},
        "image": {"type": "string", "pattern": "^data:image/jpeg;base64,"}}},
    **HISTORY_SCHEMAS,
    "Credentials": CREDENTIALS,
    "Session": {"type": "object", "required": ["user", "expires_at"], "additionalProperties": False,
                "properties": {"user": {"type": "string"}, "expires_at": {"type": "number"}}},
    "Logout": {"type": "object", "required": ["ended"], "additionalProperties": False,
               "properties": {"ended": {"type": "boolean"}}},
}


def _history_paths() -> dict[str, Any]:
    time_text = {"type": "string", "minLength": 1, "maxLength": MAX_TIME_TEXT}
    window = [
        _query("camera", {"type": "string", "pattern": CAMERA_NAME_PATTERN}, "only this camera"),
        _query("since", time_text, "from: 2h (ago), now, an ISO 8601 time (UTC unless it has an offset) or Unix "
                                   "seconds; default a day before until"),
        _query("until", time_text, "to (excluded), as since; default now")]
    paging = [
        _query("before", {"type": "number", "minimum": 0, "maximum": MAX_BEFORE},
               "only rows older than this (Unix seconds): the previous page's next_before"),
        _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, "at most this many (default 100)")]
    down = _error("the history database cannot be used now (unreachable, foreign or newer); Retry-After")
    bad = {"400": _error("bad parameter: a bad camera name or time, since not before until, too many buckets")}
    return {
        "/api/history/summary": {"get": {
            "summary": "per camera, each bucket's emotion shares, face-seconds, valence and coverage, with markers",
            "parameters": [*window, _query("bucket", {"type": "string", "pattern": BUCKET_PATTERN},
                                           "bucket length: seconds or 5m, 1h, 1d (whole minutes; default 5m)")],
            "responses": {"200": _json("the summary", "HistorySummary"), "503": down, **AUTHENTICATED, **bad}}},
        "/api/history/tracks": {"get": {
            "summary": "tracks that started in the window, newest first, paged by before",
            "parameters": [*window, *paging],
            "responses": {"200": _json("a page of tracks", "HistoryTracks"), "503": down, **AUTHENTICATED, **bad}}},
        "/api/history/tracks/{id}": {"get": {
            "summary": "one track's timeline: its summary, its samples and its events in time order",
            "parameters": [{"name": "id", "in": "path", "required": True, "description": "the track's id",
                            "schema": {"type": "integer", "minimum": 1, "maximum": TRACK_ID_MAX}}],
            "responses": {"200": _json("the timeline", "HistoryTimeline"),
                          "404": _error("no such track (purged or forgotten)"), "503": down, **AUTHENTICATED,
                          "400": _error("not a track id")}}},
        "/api/history/events": {"get": {
            "summary": "track events (appeared, changed, disappeared) in the window, newest first, paged by before",
            "parameters": [*window, *paging],
            "responses": {"200": _json("a page of events", "HistoryEvents"), "503": down, **AUTHENTICATED, **bad}}},
        "/api/history/markers": {"get": {
            "summary": "markers in the window, in time order (for a camera: its own and those for every camera)",
            "parameters": window,
            "responses": {"200": _json("markers", "Markers"), "503": down, **AUTHENTICATED, **bad}}},
        "/api/markers": {"post": {
            "summary": "set a marker (a moment to compare before and after, such as a new sign)",
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("NewMarker")}}},
            "responses": {"201": _json("the marker kept", "Marker"),
                          "400": _error("not JSON, or a bad label, camera or time"),
                          "413": _error("body too large"), "415": _error("not JSON"), "503": down,
                          **AUTHENTICATED}}},
    }


def _paths() -> dict[str, Any]:
    camera_not_found = _error("no such camera")
    return {
        "/": {"get": {"summary": "the console page", "responses": {
            "200": {"description": "the page", "content": HTML}, "303": SEE_OTHER, **AUTHENTICATED}}},
        "/history": {"get": {"summary": "the history page", "responses": {
            "200": {"description": "the page", "content": HTML}, "303": SEE_OTHER, **AUTHENTICATED}}},
        "/privacy": {"get": {**OPEN, "summary": "the privacy notice for the people filmed, open to anyone",
                             "responses": {"200": {"description": "the notice, a printable page", "content": HTML},
                                           **COMMON}}},
        "/static/{name}": {"get": {
            "summary": "the page's script and style",
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "the file", "content": {
                media: {"schema": {"type": "string"}} for media in ("text/javascript", "text/css", "text/html",
                                                                     "image/svg+xml")}},
                "303": SEE_OTHER, "404": _error("no such file"), **AUTHENTICATED}}},
        "/login": {
            "get": {**OPEN, "summary": "the login form", "responses": {
                "200": {"description": "the form", "content": HTML}, "303": SEE_OTHER, **COMMON}},
            "post": {**OPEN, "summary": "log in with the form: a session cookie and a redirect to the page",
                     "requestBody": {"required": True, "content": {
                         "application/x-www-form-urlencoded": {"schema": CREDENTIALS}}},
                     "responses": {"303": SEE_OTHER, "401": {"description": "wrong user or password: the form "
                                                             "again", "content": HTML},
                                   "409": _error("no users and no token: nothing to log in to"),
                                   "413": _error("body too large"), "415": _error("not a form"),
                                   "429": TOO_MANY, **COMMON}}},
        "/logout": {"post": {"summary": "end this session and go to the login form",
                             "responses": {"303": SEE_OTHER, **AUTHENTICATED}}},
        "/ws": {"get": {"summary": "the WebSocket of results, events, status, messages and frames (docs/web.md)",
                        "responses": {"101": {"description": "switching to the WebSocket protocol"},
                                      "400": {"description": "not a WebSocket handshake", "content": {
                                          "text/plain": {"schema": {"type": "string"}},
                                          "application/json": {"schema": _ref("Error")}}},
                                      "403": COMMON["403"], "401": AUTHENTICATED["401"], "503": STREAM_BUSY}}},
        "/api/login": {"post": {**OPEN, "summary": "log in: a session cookie (HttpOnly, SameSite=Strict)",
                                "requestBody": {"required": True, "content": {
                                    "application/json": {"schema": _ref("Credentials")}}},
                                "responses": {"200": {**_json("logged in", "Session"), "headers": {
                                    "Set-Cookie": {"schema": {"type": "string"}}}},
                                    "401": _error("wrong user name or password"),
                                    "409": _error("no users and no token: nothing to log in to"),
                                    "413": _error("body too large"), "415": _error("not JSON"),
                                    "429": TOO_MANY, **COMMON}}},
        "/api/logout": {"post": {"summary": "end this session: its cookie gets 401 from now on",
                                 "responses": {"200": _json("whether a session ended", "Logout"), **AUTHENTICATED}}},
        "/api/openapi.json": {"get": {"summary": "this document", "responses": {
            "200": {"description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}},
            **AUTHENTICATED}}},
        "/api/health": {"get": {**OPEN, "summary": "liveness, open for load balancers",
                                "responses": {"200": _json("alive", "Health"), **COMMON}}},
        "/api/cameras": {"get": {"summary": "every camera", "responses": {
            "200": _json("cameras", "Cameras"), **AUTHENTICATED}}},
        "/api/events": {"get": {
            "summary": "recent results and change events, newest first",
            "parameters": [
                _query("camera", {"type": "string", "pattern": CAMERA_NAME_PATTERN}, "only this camera"),
                _query("emotion", {"type": "string", "pattern": EMOTION_RE.pattern}, "only this emotion"),
                _query("topic", {"enum": list(TOPICS)}, "only results or only change events"),
                _query("after", {"type": "number", "minimum": 0, "maximum": 1e11}, "Unix seconds"),
                _query("before", {"type": "number", "minimum": 0, "maximum": 1e11}, "Unix seconds"),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_EVENTS_LIMIT},
                       "at most this many (default 100; no more than [web] events_ring holds)")],
            "responses": {"200": _json("events", "Events"), **AUTHENTICATED}}},
        "/api/stats": {"get": {"summary": "per-camera figures and the console's own", "responses": {
            "200": _json("figures", "Stats"), **AUTHENTICATED}}},
        "/api/analyze": {
            "post": {"summary": "analyse a photo with the daemon's pipeline",
                     "requestBody": {"required": True, "content": {
                         **{media: {"schema": {"type": "string", "contentMediaType": media}} for media in IMAGE_TYPES},
                         "multipart/form-data": {"schema": {"type": "object", "properties": {
                             "image": {"type": "string", "contentMediaType": "image/jpeg"}}}}}},
                     "responses": {"200": _json("the result, its emotion and message, the annotated photo",
                                                "Analysis"),
                                   "413": _error("body or image too large"), "415": _error("not an image type"),
                                   "503": _error("busy, or the pipeline cannot be loaded"), **AUTHENTICATED}}},
        "/api/cameras/{camera}/latest.jpg": {"get": {
            "summary": "the newest frame", "parameters": [
                CAMERA_PATH, HEIGHT, _query("bbox", {"enum": ["0", "1"]}, "1: annotated (default), 0: raw")],
            "responses": {"200": {"description": "JPEG", "headers": {"X-Emotiond-Seq": {"schema": {
                "type": "string"}}}, "content": {"image/jpeg": {"schema": {"type": "string"}}}},
                "404": camera_not_found, "503": _error("no frame yet"), **AUTHENTICATED}}},
        "/api/cameras/{camera}/stream": {"get": {
            "summary": "the camera's annotated MJPEG stream", "parameters": [
                CAMERA_PATH, HEIGHT, _query("fps", {"type": "number", "exclusiveMinimum": 0}, "frame rate cap")],
            "responses": {"200": {"description": "MJPEG", "content": {"multipart/x-mixed-replace": {
                "schema": {"type": "string"}}}}, "404": camera_not_found, "503": STREAM_BUSY, **AUTHENTICATED}}},
        **_history_paths(),
    }


@functools.cache
def document() -> dict[str, Any]:
    paths = _paths()
    return {
        "openapi": "3.1.0",
        "info": {"title": "emotiond web console", "version": "1",
                 "description": "Live annotated cameras, events, stats, photo upload and the emotion history "
                                "(docs/web.md, docs/history.md). Errors are "
                                '{"error": MESSAGE, "status": CODE}.'},
        "security": [{"bearer": []}, {"session": []}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "[web] token, for scripts"},
                "session": {"type": "apiKey", "in": "cookie", "name": COOKIE,
                            "description": "the cookie POST /api/login sets"}}},
    }


def route_table(app: web.Application) -> set[tuple[str, str]]:
    """(method, path template) of every route the application serves (HEAD, which aiohttp adds beside each GET,
    left out)."""
    table = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if path and route.method != "HEAD":
            table.add((route.method.lower(), path))
    return table


def documented() -> set[tuple[str, str]]:
    return {(method, path) for path, item in document()["paths"].items() for method in item}


def mismatches(app: web.Application) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(routes the document lacks, entries without a route)."""
    routes, entries = route_table(app), documented()
    return routes - entries, entries - routes


async def serve(request: web.Request) -> web.Response:
    return web.json_response(document())
