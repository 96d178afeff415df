"""[history]: the emotion history database (tracks, events, samples, per-minute aggregates) and its retention."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from emotiond.core.protocol import CAMERA_NAME_PATTERN
from emotiond.core.settings.base import _Section, default_state_dir

HISTORY_FILE = "history.sqlite"
_DAYS = 36_500.0  # a century: the longest retention a field accepts


class HistoryCameraSettings(_Section):
    """Retention of one camera, overriding the section's defaults (``[history.cameras.NAME]``)."""

    samples_days: Annotated[float | None, Field(gt=0.0, le=_DAYS, title="Samples kept (days)", description=(
        "Days this camera's samples are kept; unset uses [history] samples_days."))] = None
    events_days: Annotated[float | None, Field(gt=0.0, le=_DAYS, title="Tracks and events kept (days)", description=(
        "Days this camera's tracks and track events are kept; unset uses [history] events_days."))] = None


class HistorySettings(_Section):
    """The history writer (started by ``emotiond run`` when enabled) and the database every reader opens."""

    enabled: Annotated[bool, Field(title="Write history", description=(
        "Start the history writer with `emotiond run`: every track, track event, thinned samples and per-minute "
        "aggregates go into the history database."))] = True
    url: Annotated[str, Field(max_length=2048, title="Database", description=(
        "Empty: SQLite in the state folder ($XDG_STATE_HOME/emotiond/history.sqlite). A path (or sqlite:///PATH) "
        "names another SQLite file; postgresql://USER@HOST:PORT/DB uses PostgreSQL (the postgres extra), so "
        "several daemons can write to one database."))] = ""
    commit_seconds: Annotated[float, Field(ge=0.05, le=60.0, title="Commit interval (s)", description=(
        "Rows are written in one transaction about this often; a crash loses at most this long."))] = 1.0
    sample_hz: Annotated[float, Field(gt=0.0, le=60.0, title="Samples per second per track", description=(
        "Most samples (emotion scores) kept per track per second; the rest are thinned out."))] = 4.0
    samples_days: Annotated[float, Field(gt=0.0, le=_DAYS, title="Samples kept (days)", description=(
        "Samples older than this are purged."))] = 7.0
    events_days: Annotated[float, Field(gt=0.0, le=_DAYS, title="Tracks and events kept (days)", description=(
        "Tracks and their appeared/changed/disappeared events older than this are purged. Per-minute aggregates "
        "are kept for ever."))] = 90.0
    max_bytes: Annotated[int, Field(ge=0, le=1 << 50, title="Size cap (bytes)", description=(
        "When the database grows past this, the oldest samples are purged first until it fits; 0 means no "
        "cap."))] = 0
    purge_interval_seconds: Annotated[float, Field(ge=1.0, le=86_400.0, title="Purge interval (s)", description=(
        "How often retention runs (in chunks, each holding the write lock for well under 100 ms)."))] = 60.0
    buffer_rows: Annotated[int, Field(ge=100, le=10_000_000, title="Rows held while unwritable", description=(
        "Rows kept in memory while the database cannot be written (PostgreSQL unreachable, disk full); past "
        "this the oldest samples are dropped, counted (emotiond_history_dropped_rows_total) and recorded as "
        "a gap."))] = 100_000
    cameras: Annotated[dict[str, HistoryCameraSettings], Field(max_length=256, title="Per-camera retention",
                                                               description=(
        "Retention overrides per camera name, e.g. [history.cameras.entrance] samples_days = 2."))] = Field(
        default_factory=dict)

    @field_validator("url")
    @classmethod
    def _url_names_a_known_engine(cls, url: str) -> str:
        if not url or "://" not in url:
            return url
        scheme = url.split("://", 1)[0].lower()
        if scheme.split("+", 1)[0] not in ("sqlite", "postgresql", "postgres"):
            raise ValueError(f"unsupported database {scheme}://: use a SQLite path, sqlite:///PATH or "
                             "postgresql://USER@HOST:PORT/DB")
        return url

    @field_validator("cameras")
    @classmethod
    def _camera_names_are_valid(cls, cameras: dict[str, HistoryCameraSettings]) -> dict[str, HistoryCameraSettings]:
        import re

        for name in cameras:
            if not re.fullmatch(CAMERA_NAME_PATTERN, name):
                raise ValueError(f"camera name {name!r} in [history.cameras] is not a valid camera name")
        return cameras

    @model_validator(mode="after")
    def _samples_go_before_their_tracks(self) -> HistorySettings:
        for name, camera in {"": self, **self.cameras}.items():
            samples = camera.samples_days or self.samples_days
            events = camera.events_days or self.events_days
            if samples > events:
                where = f"history.cameras.{name}" if name else "history"
                raise ValueError(f"{where}: samples_days ({samples:g}) must not exceed events_days ({events:g}): "
                                 "samples belong to tracks")
        return self

    def samples_days_for(self, camera: str) -> float:
        override = self.cameras.get(camera)
        return override.samples_days if override and override.samples_days else self.samples_days

    def events_days_for(self, camera: str) -> float:
        override = self.cameras.get(camera)
        return override.events_days if override and override.events_days else self.events_days

    def default_path(self) -> Path:
        return default_state_dir() / HISTORY_FILE
