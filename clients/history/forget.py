"""Erasure: a person's right to have their tracks removed, by camera and time or by track.

Forgetting removes whole tracks (a track is one person followed across frames) with their events and samples.
Minute aggregates stay: they are anonymous counts per camera and minute (faces seen, face-seconds per emotion),
the record that retention keeps for ever, and hold nothing that names or follows one person. Markers stay too.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from emotiond.clients.history import schema
from emotiond.core.errors import UsageError

CHUNK = 500  # ids per DELETE ... IN (...): well inside SQLite's bound-variable limit
OPEN_SECONDS = 300.0  # a track without an end seen this recently may still be written to


class ForgetError(UsageError):
    """Nothing to forget was named, or the range is backwards: one line, exit 2 / 400."""


def _track_ids(connection: sa.Connection, camera: str | None, between: tuple[float, float] | None,
               track: int | None) -> tuple[list[int], int]:
    """The ids of the tracks to remove, and how many more matched but are still open."""
    tracks = schema.tracks
    last_seen = sa.func.coalesce(tracks.c.last_seen, tracks.c.first_seen)
    conditions = []
    if camera is not None:
        conditions.append(tracks.c.camera == camera)
    if between is not None:  # every track seen at some moment of the range, whole
        start, end = between
        conditions += [tracks.c.first_seen <= end, last_seen >= start]
    if track is not None:
        conditions.append(tracks.c.id == int(track))
    recent = time.time() - OPEN_SECONDS
    rows = connection.execute(sa.select(tracks.c.id, tracks.c.end_reason, last_seen.label("last"))
                              .where(*conditions)).all()
    still_open = {row.id for row in rows if row.end_reason is None and row.last >= recent}
    return [row.id for row in rows if row.id not in still_open], len(still_open)


def _chunks(ids: Sequence[int]) -> list[Sequence[int]]:
    return [ids[index:index + CHUNK] for index in range(0, len(ids), CHUNK)]


def forget(store: Any, camera: str | None = None, between: tuple[float, float] | None = None,
           track: int | None = None) -> dict[str, int]:
    """Remove the tracks matching every filter given (at least ``between`` or ``track``), with their events and
    samples, in one transaction; how many rows of each went, and how many tracks were left because they are
    still open (the writer still adds to them: forget them again once they ended)."""
    if between is None and track is None:
        raise ForgetError("name what to forget: a time range (--between A B) or a track (--track ID)")
    if between is not None:
        start, end = float(between[0]), float(between[1])
        if not (math.isfinite(start) and math.isfinite(end)) or start > end:
            raise ForgetError("the range to forget must run from an earlier time to a later one")
        between = (start, end)
    removed = {"tracks": 0, "track_events": 0, "samples": 0, "open_tracks_left": 0}
    with store.begin() as connection:
        ids, removed["open_tracks_left"] = _track_ids(connection, camera, between, track)
        for chunk in _chunks(ids):
            removed["samples"] += connection.execute(
                sa.delete(schema.samples).where(schema.samples.c.track.in_(chunk))).rowcount
            removed["track_events"] += connection.execute(
                sa.delete(schema.track_events).where(schema.track_events.c.track.in_(chunk))).rowcount
            removed["tracks"] += connection.execute(
                sa.delete(schema.tracks).where(schema.tracks.c.id.in_(chunk))).rowcount
    return removed
