"""The recent results and change events, in a bounded ring in memory, for ``GET /api/events``.

Each entry has the shape the WebSocket sends, ``{"topic": "result" | "event", "payload": {...}}``, so a page
can fill its list from the ring and then follow the socket without telling the two apart.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass
from typing import Any

from emotiond.core import protocol

TOPICS = ("result", "event")


@dataclass(frozen=True)
class Entry:
    topic: str
    camera: str
    at: float  # Unix seconds: published_at of a result, at of a change event
    emotions: frozenset[str]
    item: dict[str, Any]


@dataclass(frozen=True)
class Query:
    camera: str | None = None
    emotion: str | None = None
    topic: str | None = None
    after: float | None = None
    before: float | None = None
    limit: int = 100


def result_emotions(result: protocol.Result) -> frozenset[str]:
    """Every face's emotion and smoothed emotion: a filter on either finds the result."""
    found = set()
    for face in result.faces:
        found.add(face.emotion)
        if face.smoothed_emotion is not None:
            found.add(face.smoothed_emotion)
    return frozenset(found)


class EventRing:
    def __init__(self, capacity: int, max_age_seconds: float | None = None):
        self._entries: collections.deque[Entry] = collections.deque(maxlen=capacity)
        self.max_age_seconds = max_age_seconds  # [privacy] retention_days: nothing older is kept or served

    def __len__(self) -> int:
        self.expire()
        return len(self._entries)

    def expire(self, now: float | None = None) -> None:
        """Drop the entries older than ``max_age_seconds`` (entries arrive about in time order)."""
        if self.max_age_seconds is None:
            return
        cutoff = (time.time() if now is None else now) - self.max_age_seconds
        while self._entries and self._entries[0].at < cutoff:
            self._entries.popleft()

    def add_result(self, result: protocol.Result, item: dict[str, Any]) -> None:
        self._entries.append(Entry("result", result.camera, result.published_at, result_emotions(result), item))

    def add_event(self, event: dict[str, Any], item: dict[str, Any]) -> None:
        emotions = frozenset(str(event[k]) for k in ("emotion", "previous") if event.get(k) is not None)
        self._entries.append(Entry("event", str(event["camera"]), float(event["at"]), emotions, item))

    def query(self, query: Query) -> list[dict[str, Any]]:
        """Matching entries, newest first."""
        self.expire()
        cutoff = None if self.max_age_seconds is None else time.time() - self.max_age_seconds
        found = []
        for entry in reversed(self._entries):
            if cutoff is not None and entry.at < cutoff:
                continue
            if query.camera is not None and entry.camera != query.camera:
                continue
            if query.topic is not None and entry.topic != query.topic:
                continue
            if query.emotion is not None and query.emotion not in entry.emotions:
                continue
            if query.after is not None and entry.at <= query.after:
                continue
            if query.before is not None and entry.at >= query.before:
                continue
            found.append(entry.item)
            if len(found) >= query.limit:
                break
        return found
