"""Erasure in the history, by the ids people can know: the bus's track id (``track_id`` in ``emotiond events`` and
the log files) or the history's own row id (``emotiond history tracks``). The removal itself is the history's
(clients/history/forget.py), so both commands erase the same rows."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from emotiond.clients.history import schema
from emotiond.clients.history.forget import forget
from emotiond.core.errors import UsageError


def row_track(store: Any, row_id: int) -> tuple[str, int]:
    """(camera, bus track id) of a history track row; one line if there is none."""
    with store.begin() as connection:
        row = connection.execute(sa.select(schema.tracks.c.camera, schema.tracks.c.track_id)
                                 .where(schema.tracks.c.id == row_id)).first()
    if row is None:
        raise UsageError(f"no track {row_id} in the history (forgotten, purged, or never seen)")
    return row.camera, int(row.track_id)


def forget_in_history(store: Any, camera: str | None, between: tuple[float, float] | None,
                      track: int | None) -> dict[str, int]:
    """Forget a range (``between``, of ``camera`` or every camera) or every track whose bus id is ``track`` (on
    ``camera`` if given: a restarted daemon may give an id again, so each match goes)."""
    if track is None:
        return forget(store, camera, between, None)
    query = sa.select(schema.tracks.c.id).where(schema.tracks.c.track_id == track)
    if camera is not None:
        query = query.where(schema.tracks.c.camera == camera)
    with store.begin() as connection:
        ids = [row.id for row in connection.execute(query)]
    total = {"tracks": 0, "track_events": 0, "samples": 0, "open_tracks_left": 0}
    for row_id in ids:
        for key, count in forget(store, camera, between, row_id).items():
            total[key] += count
    return total
