"""Known history contents for the query, CLI and MQTT tests, written through ``HistoryStore`` and the schema's
SQLAlchemy Core tables (the same definitions the writer inserts with), on SQLite or PostgreSQL.

Times are fixed (``T0`` is a whole hour), so every expected figure can be worked out by hand.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import sqlalchemy as sa

from emotiond.clients.history import schema
from emotiond.clients.history.store import HistoryStore
from emotiond.clients.history.valence import valence

T0 = 1_790_000_000.0 - (1_790_000_000.0 % 3600)  # a whole hour (UTC), in 2026
LABELS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")


def scores_for(emotion: str, confidence: float = 0.9) -> dict[str, float]:
    rest = (1.0 - confidence) / (len(LABELS) - 1)
    return {label: round(confidence if label == emotion else rest, 4) for label in LABELS}


@dataclass
class Seeded:
    url: str
    tracks: dict[str, int] = field(default_factory=dict)  # name -> row id
    samples: dict[str, int] = field(default_factory=dict)  # track name -> samples written
    events: dict[str, int] = field(default_factory=dict)  # track name -> events written


def add_minute(connection: sa.Connection, camera: str, start: float, face_seconds: dict[str, float], faces: int,
               analysed: int, missed: int, model: str = "fer-test") -> None:
    valence_seconds = sum(valence(scores_for(label, 1.0)) * seconds for label, seconds in face_seconds.items())
    connection.execute(sa.insert(schema.minutes).values(
        camera=camera, zone="", start=start, faces=faces, face_seconds=json.dumps(face_seconds),
        valence_seconds=valence_seconds, frames_analysed=analysed, frames_missed=missed, model=model))


def add_track(connection: sa.Connection, camera: str, track_id: int, first: float, last: float,
              emotions: list[str], end_reason: str | None = "left", every: float = 0.25,
              model: str = "fer-test") -> tuple[int, int, int]:
    """A track whose samples show ``emotions`` in turn (one per ``every`` seconds); its row id, samples, events."""
    result = connection.execute(sa.insert(schema.tracks).values(
        camera=camera, track_key=f"{camera}/w1/{track_id}/{int(first * 1000)}", track_id=track_id, worker="w1",
        first_seen=first, last_seen=last, end_reason=end_reason, dominant=emotions[0],
        mean_scores=json.dumps(scores_for(emotions[0])), mean_valence=valence(scores_for(emotions[0])),
        samples=len(emotions), coverage=1.0, model=model))
    row_id = int(result.inserted_primary_key[0])
    rows, events = [], [{"kind": "appeared", "t": first, "emotion": emotions[0], "previous": None, "reason": None}]
    for index, emotion in enumerate(emotions):
        t = first + index * every
        scores = scores_for(emotion)
        rows.append({"track": row_id, "camera": camera, "t": t, "emotion": emotion, "confidence": scores[emotion],
                     "valence": valence(scores), "scores": json.dumps(scores)})
        if index and emotion != emotions[index - 1]:
            events.append({"kind": "changed", "t": t, "emotion": emotion, "previous": emotions[index - 1],
                           "reason": None})
    if end_reason is not None:
        events.append({"kind": "disappeared", "t": last, "emotion": emotions[-1], "previous": None,
                       "reason": end_reason})
    if rows:
        connection.execute(sa.insert(schema.samples), rows)
    connection.execute(sa.insert(schema.track_events),
                       [{"track": row_id, "camera": camera, "confidence": 0.9, **event} for event in events])
    return row_id, len(rows), len(events)


def seed(url: str) -> Seeded:
    """Two cameras over T0 .. T0+1h:

    * lobby: minutes 0-9 analysed in full, one face, 40 s happy + 20 s sad a minute; minute 10 seen but not
      analysed (60 frames missed); minutes 11-14 absent (the writer was down); minutes 15-19 two faces, 60 s
      neutral each (120 face-seconds), half the frames missed.
    * hall: minutes 0-4, 60 s angry.
    * tracks: lobby "a" (T0+10 s .. T0+70 s, happy then sad), lobby "b" (T0+900 .. T0+1000, neutral), hall "c"
      (T0+30 .. T0+90, angry), lobby "open" still open (no end) at T0+1100.
    * markers: "new sign" for lobby at T0+300, "doors open" for every camera at T0+600, "hall only" for hall.
    """
    seeded = Seeded(url)
    store = HistoryStore(url)
    try:
        with store.begin() as connection:
            for minute in range(10):
                add_minute(connection, "lobby", T0 + 60 * minute, {"happy": 40.0, "sad": 20.0}, 1, 600, 0)
            add_minute(connection, "lobby", T0 + 600, {}, 0, 0, 60)
            for minute in range(15, 20):
                add_minute(connection, "lobby", T0 + 60 * minute, {"neutral": 120.0}, 2, 300, 300)
            for minute in range(5):
                add_minute(connection, "hall", T0 + 60 * minute, {"angry": 60.0}, 1, 600, 0)
            for name, (camera, track_id, first, last, emotions, end) in {
                "a": ("lobby", 1, T0 + 10, T0 + 70, ["happy"] * 4 + ["sad"] * 4, "left"),
                "b": ("lobby", 2, T0 + 900, T0 + 1000, ["neutral"] * 6, "eos"),
                "c": ("hall", 1, T0 + 30, T0 + 90, ["angry"] * 5, "left"),
                "open": ("lobby", 3, T0 + 1100, T0 + 1101, ["happy"] * 2, None),
            }.items():
                row_id, samples, events = add_track(connection, camera, track_id, first, last, emotions, end)
                seeded.tracks[name], seeded.samples[name], seeded.events[name] = row_id, samples, events
            connection.execute(sa.insert(schema.markers), [
                {"t": T0 + 300, "camera": "lobby", "label": "new sign", "source": "cli"},
                {"t": T0 + 600, "camera": None, "label": "doors open", "source": "api"},
                {"t": T0 + 650, "camera": "hall", "label": "hall only", "source": "mqtt"},
            ])
    finally:
        store.close()
    return seeded
