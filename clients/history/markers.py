"""Markers: a moment worth comparing before and after ("new sign"), set from the CLI, the API or MQTT.

A marker is a time, a label and a camera (None: every camera). Writes go through a ``HistoryStore`` read-write
handle, beside the writer process: both engines let a second writer in (SQLite waits for the writer's batch).
"""

from __future__ import annotations

import json
import math
import time
import unicodedata
from typing import Any

import sqlalchemy as sa

from emotiond.clients.history import schema
from emotiond.core.errors import UsageError
from emotiond.core.protocol import CAMERA_NAME_MAX, CAMERA_NAME_RE

SOURCES = ("cli", "api", "mqtt")
MAX_LABEL = 200
MAX_PAYLOAD = 4096  # bytes of an MQTT marker command


class MarkerError(UsageError):
    """A marker that cannot be kept (empty or overlong label, bad camera or time): one line, exit 2 / 400."""


def _clean(text: object, what: str, limit: int) -> str:
    if not isinstance(text, str):
        raise MarkerError(f"{what} must be text")
    text = text.strip()
    if not text:
        raise MarkerError(f"{what} is empty")
    if len(text) > limit:
        raise MarkerError(f"{what} is longer than {limit} characters")
    if any(unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") for char in text):
        raise MarkerError(f"{what} holds control characters")
    return text


def check_marker(label: object, camera: object = None, t: object = None, source: str = "cli"
                 ) -> dict[str, Any]:
    """The row a marker becomes, its values checked; ``t`` None is now."""
    if source not in SOURCES:
        raise MarkerError(f"source must be one of {', '.join(SOURCES)}")
    row: dict[str, Any] = {"label": _clean(label, "label", MAX_LABEL), "source": source, "camera": None}
    if camera is not None:
        if not isinstance(camera, str) or not CAMERA_NAME_RE.match(camera):
            raise MarkerError(f"camera must be a camera name (letters, digits, _ and -, at most {CAMERA_NAME_MAX})")
        row["camera"] = camera
    if t is None:
        row["t"] = time.time()
    elif isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t) or t < 0:
        raise MarkerError("t must be Unix seconds")
    else:
        row["t"] = float(t)
    return row


def add_marker(store: Any, label: str, camera: str | None = None, t: float | None = None,
               source: str = "cli") -> int:
    """Keep a marker; its id."""
    row = check_marker(label, camera, t, source)
    with store.begin() as connection:
        result = connection.execute(sa.insert(schema.markers).values(**row))
        return int(result.inserted_primary_key[0])


def parse_command(payload: bytes) -> tuple[str, str | None]:
    """An MQTT marker command: the label as plain text, or JSON ``{"label": ..., "camera": ...}``.

    Raises MarkerError for what cannot be a marker (too large, not UTF-8, JSON of another shape)."""
    if len(payload) > MAX_PAYLOAD:
        raise MarkerError(f"marker command larger than {MAX_PAYLOAD} bytes")
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise MarkerError("marker command is not UTF-8 text") from None
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except ValueError:
            raise MarkerError("marker command starts with { but is not JSON") from None
        if not isinstance(value, dict) or set(value) - {"label", "camera"}:
            raise MarkerError('a JSON marker command is {"label": TEXT, "camera": NAME (optional)}')
        camera = value.get("camera")
        check_marker(value.get("label"), camera)
        return value["label"].strip(), camera
    check_marker(text)
    return text, None
