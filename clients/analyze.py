"""``emotiond analyze``: faces and emotions in photos and videos, in-process, with no daemon.

It runs the daemon's own pipeline (through the public ``Analyzer``) and drawing code, so a file analysed
here gets the same boxes, track ids and emotions a worker publishes for it. Results use the event schema,
with two extra keys: ``source`` (the input path) and ``t`` (seconds into a video, 0 for images). Nothing
here opens a window, so it works on headless machines.

A file that cannot be read is reported on stderr as one line and skipped; the others are still done.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np

from emotiond.clients import records
from emotiond.clients.api import Analyzer
from emotiond.clients.overlay import draw_overlay
from emotiond.clients.progress import ProgressBar
from emotiond.daemon.capture.sources import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from emotiond.daemon.core import protocol

log = logging.getLogger(__name__)


class AnalyzeError(Exception):
    """One input that could not be analysed; the message is the one line shown to the user."""


def camera_name(path: Path) -> str:
    """A protocol-valid camera name from a file name (results must pass the same validation)."""
    return protocol.camera_name_from(path.stem)


def expand_inputs(paths: list[Path]) -> Iterator[Path]:
    """Files as given; folders as their images and videos (sorted, not recursive)."""
    for path in paths:
        if path.is_dir():
            for child in sorted(path.iterdir()):
                if child.is_file() and child.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
                    yield child
        else:
            yield path


@dataclass
class AnalyzeOptions:
    out: Path | None = None
    fmt: str = "json"  # json | csv
    progress: bool = False
    stdout: IO[str] = field(default_factory=lambda: sys.stdout)


class Analysis:
    """Runs inputs one by one, writing annotated copies, JSON lines or CSV files, and counting failures."""

    def __init__(self, analyzer: Analyzer, options: AnalyzeOptions):
        self.analyzer = analyzer
        self.options = options
        self.failures: list[str] = []
        self.faces = 0
        self._used_names: set[str] = set()
        self._image_rows: list[dict[str, Any]] = []

    def _output(self, source: Path, suffix: str) -> Path | None:
        """A fresh path in --out for this input (``<stem>.annotated.<ext>``, numbered on collisions)."""
        if self.options.out is None:
            return None
        self.options.out.mkdir(parents=True, exist_ok=True)
        base = f"{source.stem}{suffix}"
        name, counter = base, 1
        while name in self._used_names:
            stem, dot, ext = base.partition(".")
            name = f"{stem}-{counter}{dot}{ext}"
            counter += 1
        self._used_names.add(name)
        return self.options.out / name

    def _emit(self, result: protocol.Result) -> None:
        self.faces += len(result.faces)
        if self.options.fmt == "json":
            self.options.stdout.write(records.json_line(result))
            self.options.stdout.flush()

    def run(self, path: Path) -> None:
        try:
            if not path.exists():
                raise AnalyzeError("no such file")
            if not path.is_file():
                raise AnalyzeError("not a regular file")
            if path.suffix.lower() in VIDEO_SUFFIXES:
                self._video(path)
            else:
                self._image(path)
        except AnalyzeError as exc:
            self.failures.append(str(path))
            print(f"emotiond analyze: {path}: {exc}", file=sys.stderr, flush=True)

    def _image(self, path: Path) -> None:
        try:
            data = np.fromfile(str(path), np.uint8)
        except OSError as exc:
            raise AnalyzeError(f"cannot read: {exc.strerror}") from None
        pixels = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if pixels is None:
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                self._video(path)  # unknown suffix: maybe a video after all
                return
            raise AnalyzeError("not a readable image (corrupt or unsupported format)")
        result = self.analyzer.result(pixels, camera_name(path), 0, {"source": str(path), "t": 0.0})
        self._emit(result)
        self._image_rows += records.csv_rows(result)
        out = self._output(path, ".annotated.png")
        if out is not None and not cv2.imwrite(str(out), draw_overlay(pixels, result)):
            raise AnalyzeError(f"cannot write {out}")

    def _video(self, path: Path) -> None:
        import cv2

        probe = cv2.VideoCapture(str(path))
        if not probe.isOpened():
            raise AnalyzeError("not a readable image or video (corrupt or unsupported format)")
        fps = probe.get(cv2.CAP_PROP_FPS) or 30.0
        total = int(probe.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        probe.release()
        writer: cv2.VideoWriter | None = None
        out = self._output(path, ".annotated.mp4")
        rows: list[dict[str, Any]] = []
        bar = self._progress_bar(path, total)
        index = 0
        try:
            for pixels, result in self.analyzer.video_frames(path, camera_name(path)):
                self._emit(result)
                rows += records.csv_rows(result)
                if out is not None:
                    if writer is None:
                        writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                                 (pixels.shape[1], pixels.shape[0]))
                        if not writer.isOpened():
                            raise AnalyzeError(f"cannot write {out}")
                    writer.write(draw_overlay(pixels, result))
                index += 1
                if bar is not None:
                    bar.update(1)
        finally:
            if writer is not None:
                writer.release()
            if bar is not None:
                bar.close()
        if index == 0:
            if out is not None:
                out.unlink(missing_ok=True)
            raise AnalyzeError("no frames could be decoded (corrupt or unsupported video)")
        if total and index < total * 0.9:
            log.warning("%s: decoded %d of %d frames; the file may be truncated", path, index, total)
        if self.options.fmt == "csv":
            csv_path = self._output(path, ".csv")
            assert csv_path is not None
            csv_path.write_text(records.csv_text(rows, header=True), encoding="utf-8")

    def _progress_bar(self, path: Path, total: int | None) -> ProgressBar | None:
        if not (self.options.progress or sys.stderr.isatty()):
            return None
        return ProgressBar(path.name, total)

    def finish(self) -> int:
        """Write the images' CSV (one file for all images) and return the exit code."""
        if self.options.fmt == "csv" and self._image_rows and self.options.out is not None:
            (self.options.out / "images.csv").write_text(records.csv_text(self._image_rows, header=True),
                                                          encoding="utf-8")
        return 1 if self.failures else 0
