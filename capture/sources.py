"""Frame sources: cameras, video files, image folders, network streams and the built-in demo.

A source yields BGR uint8 frames. ``read()`` returns None at a clean end; failures raise SourceError so the
capture loop can count them and, for live sources, reconnect with backoff.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from emotiond.capture import rtsp_probe, synthetic
from emotiond.core.redact import redact
from emotiond.core.sources import SourceError, SourceKind, kind_of

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm", ".jp2"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".gif",
                            ".ts"})
DEMO_SPEC = synthetic.SceneSpec(faces=2, frames=300, fps=30.0, expressions=True)
MAX_CONSECUTIVE_BAD_FRAMES = 25
# A stream that stalls without closing its connection would otherwise block a read for OpenCV's default 30 s.
# The capture's stall watchdog ([capture] stall_seconds) notices first: readers pass a read timeout beyond it.
STREAM_TIMEOUT_MS = 5000


def preflight(url: str) -> SourceKind:
    """Fail fast, with one clear line, on sources that can never work (missing files, bad schemes)."""
    kind = kind_of(url)
    if kind == "file":
        path = Path(url[7:] if url.startswith("file://") else url)
        if not path.exists():
            raise SourceError("missing", f"no such file or folder: {path}")
        if not path.is_file() or not _readable(path):
            raise SourceError("unreadable", f"cannot read {path}")
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return kind
        capture = cv2.VideoCapture(str(path))
        try:
            if not capture.isOpened():
                raise SourceError("unreadable", f"not a video OpenCV can decode: {path}")
        finally:
            capture.release()
    elif kind == "camera":
        device = camera_device(url)
        if not device.exists():
            present = ", ".join(str(path) for path in local_cameras()) or "none"
            raise SourceError("missing", f"no camera {device} on this machine (cameras here: {present})")
    elif kind == "folder":
        folder = Path(url[7:] if url.startswith("file://") else url)
        if not any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir() if p.is_file()):
            raise SourceError("empty", f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in folder {folder}")
    return kind


def camera_device(url: str) -> Path:
    """The V4L2 device of a camera source: ``7`` and ``/dev/video7`` are both /dev/video7 to OpenCV on Linux."""
    return Path(f"/dev/video{url}" if url.isdigit() else url)


def local_cameras() -> list[Path]:
    """The video devices this machine has now, in number order."""
    return sorted(Path("/dev").glob("video[0-9]*"), key=lambda path: int(path.name[5:]))


def _readable(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            fh.read(1)
        return True
    except OSError:
        return False


class FrameSource(Protocol):
    fps: float
    error_note: str  # set when a file ended early or frames were skipped

    def read(self) -> np.ndarray | None: ...

    def close(self) -> None: ...


@dataclass
class DemoSource:
    """The synthetic two-face scene, rendered on the fly."""

    start: int = 0
    fps: float = DEMO_SPEC.fps
    error_note: str = ""

    def __post_init__(self) -> None:
        self._index = self.start

    def read(self) -> np.ndarray | None:
        if self._index >= DEMO_SPEC.frames:
            return None
        frame, _ = synthetic.render(DEMO_SPEC, self._index)
        self._index += 1
        return frame

    def close(self) -> None:
        pass


class FolderSource:
    """Images in name order; files that are not images, or do not decode, are skipped and counted."""

    def __init__(self, folder: Path, start: int = 0, fps: float = 0.0, on_bad_file=None):
        self._files = sorted(p for p in folder.iterdir() if p.is_file())
        self._index = 0
        self._good = 0
        self._start = start
        self._on_bad_file = on_bad_file or (lambda path, why: None)
        self.fps = fps or 30.0
        self.error_note = ""

    def read(self) -> np.ndarray | None:
        while self._index < len(self._files):
            path = self._files[self._index]
            self._index += 1
            image = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.suffix.lower() in IMAGE_SUFFIXES else None
            if image is None:
                why = "not an image" if path.suffix.lower() not in IMAGE_SUFFIXES else "does not decode"
                log.warning("skipping %s: %s", path, why)
                self._on_bad_file(path, why)
                continue
            self._good += 1
            if self._good <= self._start:
                continue
            return image
        return None

    def close(self) -> None:
        pass


class VideoSource:
    """cv2.VideoCapture over a file, a camera or a network stream."""

    def __init__(self, url: str, kind: SourceKind, start: int = 0, on_bad_frame=None, ffmpeg_options: str = "",
                 read_timeout_ms: int = STREAM_TIMEOUT_MS):
        self._kind = kind
        self._on_bad_frame = on_bad_frame or (lambda: None)
        self.error_note = ""
        target: str | int = int(url) if url.isdigit() else url
        if kind == "file" and url.startswith("file://"):
            target = url[7:]
        if kind == "stream":
            self._capture = _open_stream(str(target), ffmpeg_options, read_timeout_ms)
        else:
            self._capture = cv2.VideoCapture(target)
        if not self._capture.isOpened():
            self._capture.release()
            what = {"camera": "camera", "stream": "stream"}.get(kind, "video file")
            reason, why = "open_failed", ""
            if url.lower().startswith("rtsp://"):
                reason, why = rtsp_probe.diagnose(url)
                why = f": {why}"
            raise SourceError(reason, f"cannot open {what} {redact(url)}{why}")
        self.fps = self._capture.get(cv2.CAP_PROP_FPS) or 0.0
        if not 0.0 < self.fps <= 240.0:
            self.fps = 30.0
        self._expected = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if kind == "file" else 0
        self._position = 0
        for _ in range(start):
            if not self._capture.grab():
                break
            self._position += 1

    def read(self) -> np.ndarray | None:
        bad = 0
        while True:
            ok, frame = self._capture.read()
            if ok and frame is not None and frame.size:
                self._position += 1
                if frame.dtype != np.uint8 or frame.ndim != 3:
                    frame = _to_bgr8(frame)
                return frame
            if self._kind != "file":
                raise SourceError("read_failed", "no frame from source (disconnected?)")
            if self._position + bad >= self._expected or bad >= MAX_CONSECUTIVE_BAD_FRAMES:
                break
            bad += 1
            self._on_bad_frame()
            self._capture.grab()
        if self._expected and self._position < self._expected:
            self.error_note = (f"video ended after {self._position} of {self._expected} frames "
                               "(truncated or corrupt file)")
        return None

    def close(self) -> None:
        self._capture.release()


# OpenCV reads FFmpeg's input options from one environment variable at open time; opens that set their own
# options take turns so each stream gets its own (an open waits at most STREAM_TIMEOUT_MS).
_OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
_options_lock = threading.Lock()


def _open_stream(target: str, ffmpeg_options: str, read_timeout_ms: int) -> cv2.VideoCapture:
    timeouts = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, read_timeout_ms]
    if not ffmpeg_options:
        return cv2.VideoCapture(target, cv2.CAP_FFMPEG, timeouts)
    with _options_lock:
        before = os.environ.get(_OPTIONS_ENV)
        os.environ[_OPTIONS_ENV] = ffmpeg_options
        try:
            return cv2.VideoCapture(target, cv2.CAP_FFMPEG, timeouts)
        finally:
            if before is None:
                os.environ.pop(_OPTIONS_ENV, None)
            else:
                os.environ[_OPTIONS_ENV] = before


def _to_bgr8(frame: np.ndarray) -> np.ndarray:
    if frame.dtype != np.uint8:
        frame = cv2.convertScaleAbs(frame)
    if frame.ndim == 2:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    return frame


def open_source(url: str, start: int = 0, fps: float = 0.0, on_bad_file=None, on_bad_frame=None,
                ffmpeg_options: str = "", read_timeout_ms: int = STREAM_TIMEOUT_MS) -> FrameSource:
    """Open a source, skipping ``start`` frames (used to resume after a capture restart). ``ffmpeg_options``
    (``key;value|...``) and ``read_timeout_ms`` apply to network streams."""
    kind = kind_of(url)
    if kind == "demo":
        return DemoSource(start=start, fps=fps or DEMO_SPEC.fps)
    if kind == "folder":
        return FolderSource(Path(url[7:] if url.startswith("file://") else url), start, fps, on_bad_file)
    if kind == "file" and Path(url).suffix.lower() in IMAGE_SUFFIXES:
        return _SingleImage(Path(url), fps)
    source = VideoSource(url, kind, start if kind == "file" else 0, on_bad_frame, ffmpeg_options, read_timeout_ms)
    if fps:
        source.fps = fps
    return source


class _SingleImage:
    """One still image as a one-frame source."""

    def __init__(self, path: Path, fps: float):
        self._path = path
        self._done = False
        self.fps = fps or 30.0
        self.error_note = ""

    def read(self) -> np.ndarray | None:
        if self._done:
            return None
        self._done = True
        image = cv2.imread(str(self._path), cv2.IMREAD_COLOR)
        if image is None:
            raise SourceError("unreadable", f"image does not decode: {self._path}")
        return image

    def close(self) -> None:
        pass
