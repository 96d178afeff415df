"""The output folder of ``emotiond analyze``: atomic files, segments joined back, and what ``--resume`` trusts.

Every output appears under its final name only when it is whole: it is written under a temporary name in the
run's state folder (``DIR/.emotiond-analyze/tmp``, on the same file system) and renamed. An input is complete
when its manifest (``DIR/.emotiond-analyze/<name>.json``) exists: it is written last, after every output of
the input, and records the source's size and modification time, the settings that shape the results, and the
size of every output. ``--resume`` skips an input only if all of that still matches.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from emotiond.core.errors import UsageError
from emotiond.core.settings import Settings

log = logging.getLogger(__name__)

STATE_DIR = ".emotiond-analyze"
MANIFEST_VERSION = 1
CONCAT_TIMEOUT_S = 3600.0


class OutputError(Exception):
    """An output that cannot be written (disk full, permissions): the input fails with this message."""


def results_fingerprint(settings: Settings, fmt: str, chunk_seconds: float, landmarks: bool = False) -> str:
    """What makes two runs' results comparable: the sections that shape rows, the segment length, and what is
    drawn on annotated outputs."""
    shaping = {"detection": settings.detection.model_dump(mode="json"),
               "tracking": settings.tracking.model_dump(mode="json"),
               "model": settings.classifier.model, "backend": settings.classifier.backend,
               "align": settings.classifier.align, "landmarks": landmarks,
               "format": fmt, "chunk_seconds": chunk_seconds, "version": MANIFEST_VERSION}
    return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:16]


def fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


class OutputFolder:
    """``--out DIR``: a lock so two runs never write into it at once, the state folder, atomic writes."""

    def __init__(self, root: Path):
        self.root = root
        self.state = root / STATE_DIR
        self.tmp = self.state / "tmp"
        self._lock: IO[str] | None = None

    def open(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self.state.mkdir(exist_ok=True)
            self._lock = (self.state / "lock").open("w")
        except OSError as exc:
            raise UsageError(f"--out {self.root}: cannot write there ({exc.strerror})") from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            self._lock = None
            raise UsageError(f"--out {self.root}: another emotiond analyze is writing there") from None
        shutil.rmtree(self.tmp, ignore_errors=True)  # leftovers of a run that was killed
        self.tmp.mkdir()

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def temporary(self, name: str) -> Path:
        return self.tmp / f"{uuid.uuid4().hex[:12]}-{name}"

    def publish(self, temporary: Path, name: str) -> Path:
        """Move a finished file to its final name (flushed first, so a crash never leaves it half there)."""
        final = self.root / name
        try:
            with temporary.open("rb+") as handle:
                os.fsync(handle.fileno())
            os.replace(temporary, final)
        except OSError as exc:
            raise OutputError(f"cannot write {final}: {exc.strerror}") from None
        return final

    def write_text(self, name: str, text: str) -> Path:
        temporary = self.temporary(name)
        try:
            temporary.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"cannot write {self.root / name}: {exc.strerror}") from None
        return self.publish(temporary, name)

    # ------------------------------------------------------------ manifests
    def manifest_path(self, key: str) -> Path:
        return self.state / f"{key}.json"

    def write_manifest(self, manifest: Manifest) -> None:
        """Last step of an input: from now on it counts as complete."""
        path = self.manifest_path(manifest.key)
        temporary = self.temporary(path.name)
        temporary.write_text(json.dumps(manifest.to_dict(), separators=(",", ":")), encoding="utf-8")
        with temporary.open("rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        fsync_dir(self.root)
        fsync_dir(self.state)

    def forget(self, key: str) -> None:
        """An input is being redone: it is not complete until its new manifest is written."""
        self.manifest_path(key).unlink(missing_ok=True)

    def complete(self, key: str, source: Path, fingerprint: str) -> Manifest | None:
        """The input's manifest if its outputs are complete and still describe this source and settings."""
        try:
            manifest = Manifest.from_dict(json.loads(self.manifest_path(key).read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        identity = source_identity(source)
        if identity is None or manifest.source != identity or manifest.fingerprint != fingerprint:
            return None
        for name, size in manifest.outputs.items():
            try:
                if (self.root / name).stat().st_size != size:
                    return None
            except OSError:
                return None
        return manifest


def source_identity(source: Path) -> dict[str, Any] | None:
    try:
        stat = source.stat()
    except OSError:
        return None
    return {"path": str(source.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


@dataclass
class Manifest:
    key: str
    kind: str  # image | video
    source: dict[str, Any]
    fingerprint: str
    frames: int
    faces: int
    outputs: dict[str, int]  # file name in --out -> size in bytes
    records: list[Any] = field(default_factory=list)  # an image's JSON lines or CSV rows (images.* is rebuilt)

    def to_dict(self) -> dict[str, Any]:
        return {"version": MANIFEST_VERSION, "key": self.key, "kind": self.kind, "source": self.source,
                "fingerprint": self.fingerprint, "frames": self.frames, "faces": self.faces, "outputs": self.outputs,
                "records": self.records}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        if data.get("version") != MANIFEST_VERSION:
            raise ValueError("other manifest version")
        return cls(key=str(data["key"]), kind=str(data["kind"]), source=dict(data["source"]),
                   fingerprint=str(data["fingerprint"]), frames=int(data["frames"]), faces=int(data["faces"]),
                   outputs={str(k): int(v) for k, v in data["outputs"].items()}, records=list(data["records"]))


def join_segments(parts: list[Path], destination: Path, scratch: Path) -> None:
    """Annotated segments, in order, as one video: stream copy (no re-encoding), so joining costs little and
    the frames are exactly the segments' frames."""
    if len(parts) == 1:
        os.replace(parts[0], destination)
        return
    listing = scratch.with_suffix(".txt")
    listing.write_text("".join(f"file '{_concat_quote(part)}'\n" for part in parts), encoding="utf-8")
    command = ["ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "concat", "-safe", "0", "-i", str(listing),
               "-c", "copy", "-f", "mp4", str(destination)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=CONCAT_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise OutputError(f"cannot join the annotated segments: {exc}") from None
    finally:
        listing.unlink(missing_ok=True)
    if done.returncode != 0:
        destination.unlink(missing_ok=True)
        raise OutputError(f"cannot join the annotated segments: {done.stderr.strip()[-300:]}")
    for part in parts:
        part.unlink(missing_ok=True)


def _concat_quote(path: Path) -> str:
    return str(path.resolve()).replace("'", "'\\''")


class TextSink:
    """A per-video JSONL or CSV file that grows segment by segment under a temporary name."""

    def __init__(self, folder: OutputFolder, name: str):
        self.folder = folder
        self.name = name
        self.temporary = folder.temporary(name)
        try:
            self._handle: IO[str] | None = self.temporary.open("w", encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"cannot write {folder.root / name}: {exc.strerror}") from None

    def write(self, text: str) -> None:
        assert self._handle is not None
        try:
            self._handle.write(text)
        except OSError as exc:
            raise OutputError(f"cannot write {self.folder.root / self.name}: {exc.strerror}") from None

    def publish(self) -> Path:
        self._close()
        return self.folder.publish(self.temporary, self.name)

    def discard(self) -> None:
        self._close()
        self.temporary.unlink(missing_ok=True)

    def _close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def read_lines(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8") as handle:
        yield from handle


def sizes(folder: Path, names: Iterable[str]) -> dict[str, int]:
    return {name: (folder / name).stat().st_size for name in names}
