"""Append-only log files that rotate by size and by (UTC) day, written in whole lines.

Files are named ``<prefix>-<YYYY-MM-DD>.<NNN>.<ext>``: the date is the UTC day the lines were written,
NNN counts size rotations within the day. Days are UTC so a daylight-saving change never makes two
files claim the same hour.

Durability policy:

* Every batch of lines is handed to the OS with one ``write`` and a flush, so a crash or ``kill -9`` of
  the logger loses nothing it has written.
* ``fsync`` runs at most every ``fsync_seconds`` (default 1 s), and always on rotation and close. That
  bounds what a power cut can take to about a second of results while keeping the disk from doing a
  sync per frame (30 fps x cameras). ``fsync_seconds=0`` syncs every batch.
* When a new file is created the folder is synced too, so the file itself survives a power cut.
* On reopening, a file whose last line is incomplete (power cut mid-write) is cut back to its last full
  line before anything is appended, so readers never meet a torn line in the middle of a file.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)


def utc_day(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).strftime("%Y-%m-%d")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def repair_tail(path: Path) -> int:
    """Cut an incomplete last line off ``path``; returns the bytes removed."""
    size = path.stat().st_size
    if size == 0:
        return 0
    with path.open("rb+") as fh:
        fh.seek(-1, os.SEEK_END)
        if fh.read(1) == b"\n":
            return 0
        block = 1 << 16
        end = size
        while end > 0:
            start = max(0, end - block)
            fh.seek(start)
            chunk = fh.read(end - start)
            cut = chunk.rfind(b"\n")
            if cut >= 0:
                keep = start + cut + 1
                break
            end = start
        else:
            keep = 0
        fh.truncate(keep)
        fh.flush()
        os.fsync(fh.fileno())
    return size - keep


class RotatingLog:
    def __init__(self, folder: Path, ext: str, *, rotate_bytes: int, fsync_seconds: float = 1.0,
                 header: str = "", prefix: str = "emotiond", clock: Callable[[], float] = time.time,
                 on_rotate: Callable[[Path], None] | None = None):
        self.folder = folder
        self.ext = ext
        self.rotate_bytes = rotate_bytes
        self.fsync_seconds = fsync_seconds
        self.header = header
        self.prefix = prefix
        self._clock = clock
        self._on_rotate = on_rotate
        self._fh: IO[str] | None = None
        self._day = ""
        self._index = 0
        self._size = 0
        self._last_sync = time.monotonic()
        self._dirty = False
        self.bytes_written = 0
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def path(self) -> Path:
        return self.folder / f"{self.prefix}-{self._day}.{self._index:03d}.{self.ext}"

    def _existing_indexes(self, day: str) -> list[int]:
        pattern = re.compile(rf"^{re.escape(self.prefix)}-{day}\.(\d{{3,}})\.{re.escape(self.ext)}$")
        return sorted(int(m.group(1)) for p in self.folder.iterdir() if (m := pattern.match(p.name)))

    def _open(self, day: str) -> None:
        """Continue today's newest file if it has room and the same header, else start the next one."""
        self._day = day
        indexes = self._existing_indexes(day)
        self._index = indexes[-1] if indexes else 0
        path = self.path
        if path.exists():
            removed = repair_tail(path)
            if removed:
                log.warning("%s ended in an incomplete line; removed %d bytes", path, removed)
            size = path.stat().st_size
            if size >= self.rotate_bytes or (self.header and size and not self._same_header(path)):
                self._index += 1
        self._open_path()

    def _same_header(self, path: Path) -> bool:
        with path.open(encoding="utf-8", errors="replace") as fh:
            return fh.readline() == self.header

    def _open_path(self) -> None:
        path = self.path
        created = not path.exists()
        self._fh = path.open("a", encoding="utf-8", newline="")
        self._size = path.stat().st_size
        if created:
            _fsync_dir(self.folder)
        if self._size == 0 and self.header:
            self._fh.write(self.header)
            self._size += len(self.header.encode())
        log.info("logging to %s", path)

    def _rotate(self, day: str) -> None:
        old = self.path
        self._close_file()
        if day != self._day:
            self._open(day)
        else:
            self._index += 1
            self._open_path()
        if self._on_rotate:
            self._on_rotate(old)

    def write(self, text: str) -> None:
        """Append whole lines (``text`` ends in a newline) with one write, then flush to the OS."""
        if not text:
            return
        day = utc_day(self._clock())
        size = len(text.encode())
        if self._fh is None:
            self._open(day)
        elif day != self._day or (self._size > len(self.header) and self._size + size > self.rotate_bytes):
            self._rotate(day)
        assert self._fh is not None
        self._fh.write(text)
        self._fh.flush()
        self._size += size
        self.bytes_written += size
        self._dirty = True
        self.sync_if_due()

    def sync_if_due(self) -> None:
        """fsync when unsynced data is older than the policy allows (also call this when idle)."""
        if self._dirty and time.monotonic() - self._last_sync >= self.fsync_seconds:
            self.sync()

    def sync(self) -> None:
        if self._fh is not None and self._dirty:
            os.fsync(self._fh.fileno())
            self._dirty = False
        self._last_sync = time.monotonic()

    def _close_file(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None

    def close(self) -> None:
        self._close_file()
