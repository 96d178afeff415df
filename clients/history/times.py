"""Times as people type them, for every history query: ``2h`` ago, ``2026-05-01T14:00``, or Unix seconds.

The CLI and the web API read ``since``/``until``/``bucket`` through these functions, so a value means the same
wherever it is given. Every time is UTC: an ISO timestamp without an offset is taken as UTC, never local time.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

from emotiond.core.errors import UsageError

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
MAX_SECONDS = 100 * 365 * 86400  # a century: beyond this a value is a typo


class TimeError(UsageError):
    """A time, duration or bucket that cannot be read: one line for the CLI (exit 2) or the API (400)."""


def parse_duration(text: str, what: str = "duration") -> float:
    """``30s``, ``5m``, ``2h``, ``7d``, ``1w`` (or plain seconds) as seconds; positive and finite."""
    match = _DURATION.match(str(text))
    try:
        seconds = float(match.group(1)) * UNITS[match.group(2).lower()] if match else float(text)
    except (TypeError, ValueError):
        raise TimeError(f"{what}: {text!r} is not a duration (like 30s, 5m, 2h, 7d)") from None
    if not math.isfinite(seconds) or seconds <= 0 or seconds > MAX_SECONDS:
        raise TimeError(f"{what}: {text!r} must be a positive duration of at most 100 years")
    return seconds


def parse_time(text: str, now: float, what: str = "time") -> float:
    """A moment as Unix seconds: ``now``, a duration before ``now`` (``2h``), an ISO 8601 timestamp (UTC unless it
    carries an offset), or Unix seconds."""
    text = str(text).strip()
    if text.lower() == "now":
        return now
    if _DURATION.match(text):
        return now - parse_duration(text, what)
    try:
        seconds = float(text)
    except ValueError:
        seconds = _iso(text, what)
    if not math.isfinite(seconds) or not 0 <= seconds <= now + MAX_SECONDS:
        raise TimeError(f"{what}: {text!r} is out of range")
    return seconds


def _iso(text: str, what: str) -> float:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise TimeError(f"{what}: {text!r} is not a time (like 2h, 30m, 7d, now, 2026-05-01T14:00 or "
                        "2026-05-01T14:00+02:00)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def iso(seconds: float | None) -> str | None:
    """Unix seconds as an ISO 8601 UTC timestamp with milliseconds (``2026-05-01T14:00:00.000Z``)."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
