"""``[privacy] retention_days`` as one cap over every store: each may keep less, never more.

The history keeps its own tiers (samples, tracks and events) and the console its ring of recent events; this module
says what each may keep once the cap applies, and purges the logger's day files that would outlive it.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from pathlib import Path

from emotiond.core.settings import HistorySettings, Settings

log = logging.getLogger(__name__)
DAY = 86_400.0
# emotiond-<YYYY-MM-DD>.<NNN>.<ext>, as clients/log/files.py names them
LOG_FILE_RE = re.compile(r"^(?P<prefix>.+)-(?P<day>\d{4}-\d{2}-\d{2})\.(?P<index>\d{3,})\.(?P<ext>jsonl|csv)$")


def capped(days: float, cap: float | None) -> float:
    """A store's own limit, or the cap when that is shorter."""
    return days if cap is None else min(days, float(cap))


def capped_history(settings: Settings) -> HistorySettings:
    """``[history]`` with every retention tier (the section's and each camera's) cut to ``retention_days``."""
    cap = settings.privacy.retention_days
    history = settings.history
    if cap is None:
        return history
    cameras = {name: camera.model_copy(update={
        "samples_days": None if camera.samples_days is None else capped(camera.samples_days, cap),
        "events_days": None if camera.events_days is None else capped(camera.events_days, cap)})
        for name, camera in history.cameras.items()}
    return history.model_copy(update={"samples_days": capped(history.samples_days, cap),
                                      "events_days": capped(history.events_days, cap), "cameras": cameras})


def max_age_seconds(settings: Settings) -> float | None:
    """How long anything about a face may stay in memory or on disk (None: no cap)."""
    cap = settings.privacy.retention_days
    return None if cap is None else cap * DAY


def log_file_day(path: Path) -> float | None:
    """The UTC midnight that starts the day a log file was written, from its name (None: not a log file)."""
    match = LOG_FILE_RE.match(path.name)
    if match is None:
        return None
    try:
        return datetime.strptime(match["day"], "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def expired_log_files(folder: Path, days: float, now: float) -> list[Path]:
    """Day files whose first possible line is older than ``days``: a day file goes as soon as any of it could, so a
    folder keeps between ``days - 1`` and ``days`` days (less, never more)."""
    cutoff = now - days * DAY
    found = []
    for path in sorted(folder.iterdir()) if folder.is_dir() else ():
        start = log_file_day(path)
        if start is not None and start < cutoff and path.is_file():
            found.append(path)
    return found


def purge_log_files(folder: Path, days: float, now: float) -> list[Path]:
    """Delete the expired day files of ``folder``; the ones removed."""
    removed = []
    for path in expired_log_files(folder, days, now):
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        removed.append(path)
    if removed:
        log.info("retention: removed %d log files older than %g days from %s", len(removed), days, folder)
    return removed
