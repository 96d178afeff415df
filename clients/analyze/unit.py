"""The worker side of ``emotiond analyze``: one work unit (an image or a video segment) through the pipeline.

Every engine runs units with ``run_unit``, in its own processes or on cluster workers, so an input gives the
same rows whichever engine ran it. A process loads the model once and keeps it for all later units (one
loaded pipeline per thread that runs units at the same time). A segment starts its tracks afresh at its key
frame; its frames keep their numbers within the whole video, and track ids are made from the frame where a
track begins, so ids stay unique within a video. Annotated images and segments are written under a temporary
name and renamed, so a worker killed mid-task never leaves half a file where the run looks for one.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from emotiond.capture.sources import IMAGE_SUFFIXES
from emotiond.clients import records
from emotiond.clients.analyze.plan import IMAGE, VIDEO, WorkUnit
from emotiond.clients.api import VIDEO_BATCH_FRAMES, Analyzer
from emotiond.clients.overlay import draw_overlay
from emotiond.core import protocol
from emotiond.core.errors import UsageError
from emotiond.core.lifecycle import TITLE_PREFIX, configure_threads
from emotiond.core.settings import Settings

log = logging.getLogger(__name__)

Report = Callable[[int, int], None]  # (unit index, frames done so far)
BUSY_MARK = " · "


@dataclass
class UnitResult:
    """What a unit produced. Rows travel back to the caller, which writes every text output itself;
    ``annotated`` is a finished file in the unit's ``parts_dir``."""

    index: int
    input_index: int
    kind: str = IMAGE  # what the input turned out to be: an image, or a video (also one without a video suffix)
    frames: int = 0
    faces: int = 0
    lines: list[str] = field(default_factory=list)  # JSON lines (format json)
    rows: list[dict[str, Any]] = field(default_factory=list)  # CSV rows (format csv)
    annotated: str | None = None
    error: str | None = None  # one line for the user: this input failed
    warning: str | None = None
    worker: str = ""


class UnitError(Exception):
    """An input that cannot be analysed (unreadable, corrupt, unwritable output): reported and skipped."""


class WorkerSetupError(Exception):
    """The worker cannot analyse anything (no model): the run stops with this message."""


# ------------------------------------------------------------ one loaded pipeline per running thread
_lock = threading.Lock()
_idle: dict[str, list[Analyzer]] = {}


def settings_payload(settings: Settings) -> str:
    """Settings as JSON text: what workers rebuild their pipeline from (and the key of its cache)."""
    return settings.model_dump_json()


def load_analyzer(payload: str) -> Analyzer:
    """A pipeline for these settings. OpenCV runs single-threaded here: parallelism comes from processes,
    and the same threading everywhere keeps every engine's answers the same."""
    configure_threads(1)
    try:
        return Analyzer(Settings.model_validate(json.loads(payload)))
    except UsageError as exc:
        raise WorkerSetupError(f"{worker_id()}: {exc}") from None


@contextmanager
def borrowed_analyzer(payload: str) -> Iterator[Analyzer]:
    with _lock:
        idle = _idle.setdefault(payload, [])
        analyzer = idle.pop() if idle else None
    if analyzer is None:
        analyzer = load_analyzer(payload)
    try:
        yield analyzer
    finally:
        with _lock:
            _idle[payload].append(analyzer)


def warm_up(payload: str) -> None:
    """Load the model now, so the first unit does not wait for it."""
    with borrowed_analyzer(payload):
        pass


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@contextmanager
def busy_title(label: str) -> Iterator[None]:
    """Show the unit in ps while it runs (``... · clip.mp4 [2/5]``), then the title from before."""
    import setproctitle

    before = setproctitle.getproctitle()
    base = before if before.startswith(TITLE_PREFIX) else f"{TITLE_PREFIX}analyze"
    setproctitle.setproctitle(f"{base}{BUSY_MARK}{label}")
    try:
        yield
    finally:
        setproctitle.setproctitle(before)


# ------------------------------------------------------------ a unit
def run_unit(unit: WorkUnit, payload: str, report: Report | None = None) -> UnitResult:
    """Analyse one unit. Bad input becomes ``error``; only a missing model raises (WorkerSetupError)."""
    result = UnitResult(unit.index, unit.input_index, kind=unit.kind, worker=worker_id())
    with busy_title(unit.label), borrowed_analyzer(payload) as analyzer:
        try:
            if unit.kind == IMAGE:
                _image(analyzer, unit, result, report)
            else:
                _video(analyzer, unit, result, report)
        except UnitError as exc:
            result.error = str(exc)
    return result


def _collect(unit: WorkUnit, result: UnitResult, frame: protocol.Result) -> None:
    result.frames += 1
    result.faces += len(frame.faces)
    if unit.fmt == "json":
        result.lines.append(records.json_line(frame))
    else:
        result.rows.extend(records.csv_rows(frame))


def _image(analyzer: Analyzer, unit: WorkUnit, result: UnitResult, report: Report | None) -> None:
    try:
        data = np.fromfile(unit.path, np.uint8)
    except OSError as exc:
        raise UnitError(f"cannot read: {exc.strerror}") from None
    pixels = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if pixels is None:
        if Path(unit.path).suffix.lower() not in IMAGE_SUFFIXES:
            _video(analyzer, unit, result, report)  # unknown suffix: maybe a video after all
            return
        raise UnitError("not a readable image (corrupt or unsupported format)")
    pixels, frame = analyzer.result_image(pixels, unit.camera, 0, {"source": unit.source, "t": 0.0})
    _collect(unit, result, frame)
    if unit.parts_dir is not None:
        final = Path(unit.parts_dir) / f"{unit.key}.annotated.png"
        temporary = final.with_name(f"{final.stem}.tmp-{uuid.uuid4().hex}.png")
        if not cv2.imwrite(str(temporary), draw_overlay(pixels, frame, landmarks=unit.landmarks)):
            temporary.unlink(missing_ok=True)
            raise UnitError(f"cannot write the annotated image into {unit.parts_dir}")
        os.replace(temporary, final)
        result.annotated = str(final)
    if report is not None:
        report(unit.index, 1)


def open_video(path: str) -> cv2.VideoCapture:
    """One decoding thread: the engines run one process per core."""
    capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
    if not capture.isOpened():
        capture = cv2.VideoCapture(path)
    return capture


@dataclass
class _Segment:
    """An open decoder on a segment; ``first`` is its first frame when seeking already read it."""

    capture: cv2.VideoCapture
    fps: float
    first: np.ndarray | None = None
    timestamps_agree: bool = True  # the file's timestamps match the key frame index: stop by time too


def _seek(unit: WorkUnit, segment: _Segment) -> None:
    """Put the decoder on the segment's first frame.

    Seeking to a key frame is exact for ordinary files, and the first frame's time proves it. If it is not
    (variable frame rate, odd timestamps), the segment is decoded from the start of the file instead: slow,
    but never a lost or doubled frame."""
    capture = segment.capture
    if unit.start > 0:
        capture.set(cv2.CAP_PROP_POS_FRAMES, unit.start)
    ok, first = capture.read()
    if not ok:
        segment.first, segment.timestamps_agree = None, False
        if unit.start == 0:
            return  # nothing decodes: the caller reports it
    landed = capture.get(cv2.CAP_PROP_POS_MSEC)
    if ok and abs(landed - unit.start_ms) <= 500.0 / segment.fps:
        segment.first = first
        return
    if unit.start == 0:  # the file's clock starts elsewhere: stop by frame count only
        segment.first, segment.timestamps_agree = first, False
        return
    log.info("%s: seeking to frame %d landed at %.1f ms, not %.1f ms; decoding from the start",
             unit.source, unit.start, landed, unit.start_ms)
    capture.release()
    segment.capture = capture = open_video(unit.path)
    segment.timestamps_agree = False
    for _ in range(unit.start):
        if not capture.grab():
            raise UnitError(f"the video ends before frame {unit.start}")


def _frames(unit: WorkUnit, segment: _Segment) -> Iterator[np.ndarray]:
    """The segment's frames: up to the next segment's key frame (by count, and by time where the file's
    timestamps agree, so a frame the decoder skipped never pulls the next segment's first frame in), or to
    the end of the file for the last segment."""
    wanted = None if unit.stop is None else unit.stop - unit.start
    stop_ms = unit.stop_ms if segment.timestamps_agree else None
    half_frame_ms = 500.0 / segment.fps
    count = 0
    while wanted is None or count < wanted:
        if count == 0 and segment.first is not None:
            pixels, segment.first = segment.first, None
        else:
            ok, pixels = segment.capture.read()
            if not ok:
                return
            if stop_ms is not None and segment.capture.get(cv2.CAP_PROP_POS_MSEC) >= stop_ms - half_frame_ms:
                return
        count += 1
        yield pixels


def _video(analyzer: Analyzer, unit: WorkUnit, result: UnitResult, report: Report | None) -> None:
    result.kind = VIDEO
    capture = open_video(unit.path)
    if not capture.isOpened():
        raise UnitError("not a readable image or video (corrupt or unsupported format)")
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    source = _Segment(capture, fps)
    writer: cv2.VideoWriter | None = None
    segment = temporary = None
    if unit.parts_dir is not None:
        segment = Path(unit.parts_dir) / f"{unit.key}.{unit.chunk:06d}.mp4"
        temporary = segment.with_name(f"{segment.stem}.tmp-{uuid.uuid4().hex}.mp4")
    analyzer.pipeline.reset(unit.camera)  # each segment starts its tracks afresh
    try:
        _seek(unit, source)
        frames = _frames(unit, source)
        seq = unit.start
        while True:
            batch = [(seq + offset, pixels) for offset, pixels in zip(range(VIDEO_BATCH_FRAMES), frames,
                                                                       strict=False)]
            if not batch:
                break
            extra = [{"source": unit.source, "t": round(number / fps, 4)} for number, _ in batch]
            outputs = analyzer.pipeline.process_images(unit.camera, batch, worker="analyze", extra=extra)
            for pixels, frame in outputs:  # each frame as it may be saved: faces hidden per [privacy]
                _collect(unit, result, frame)
                if temporary is not None:
                    if writer is None:
                        writer = cv2.VideoWriter(str(temporary), cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                                 (pixels.shape[1], pixels.shape[0]))
                        if not writer.isOpened():
                            raise UnitError(f"cannot write an annotated video into {unit.parts_dir}")
                    writer.write(draw_overlay(pixels, frame, landmarks=unit.landmarks))
            seq += len(batch)
            if report is not None:
                report(unit.index, result.frames)
    except BaseException:
        if temporary is not None:
            temporary.unlink(missing_ok=True)
        raise
    finally:
        source.capture.release()
        if writer is not None:
            writer.release()
        analyzer.pipeline.reset(unit.camera)
    if result.frames == 0:
        if temporary is not None:
            temporary.unlink(missing_ok=True)
        if unit.chunk == 0:
            raise UnitError("no frames could be decoded (corrupt or unsupported video)")
        result.warning = f"frames {unit.start}-{unit.stop or 'end'} could not be decoded"
        return
    if unit.stop is not None and result.frames < unit.stop - unit.start:
        result.warning = (f"decoded {result.frames} of the {unit.stop - unit.start} frames from frame {unit.start}; "
                          "the file may be damaged")
    if segment is not None and temporary is not None:
        os.replace(temporary, segment)
        result.annotated = str(segment)
