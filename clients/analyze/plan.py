"""Work units for ``emotiond analyze``: a whole image, or a segment of a video that begins at a key frame.

Long videos are split so that several processes (or a cluster) can share one file. A segment starts at a key
frame because that is where a decoder can start without the frames before it, so each worker seeks straight
to its segment. Key frames come from ``ffprobe`` reading packets only (no decoding), which is fast even for
hours of video. Without ffprobe and ffmpeg (which joins the annotated segments again) a video is one unit.

The plan depends only on the file and ``chunk_seconds``, never on the engine or the number of workers, so
every engine gets the same segments and therefore the same results.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from emotiond.capture.sources import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from emotiond.core import protocol

log = logging.getLogger(__name__)

IMAGE = "image"
VIDEO = "video"
PROBE_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class WorkUnit:
    """One task: an image, or frames ``start`` (a key frame) up to ``stop`` of a video.

    ``index`` orders the run: results are written in this order, so outputs never depend on which worker
    finished first. ``path`` is absolute (workers may run elsewhere); ``source`` is the path as given, which
    goes into the results."""

    index: int
    input_index: int
    source: str
    path: str
    kind: str
    camera: str
    fmt: str
    key: str  # the output name stem of the input (``<key>.annotated.mp4``)
    parts_dir: str | None  # where the worker leaves its annotated image or video segment; None: no --out
    chunk: int = 0
    chunks: int = 1
    start: int = 0
    stop: int | None = None  # the frame after the segment; None: to the end of the file
    start_ms: float = 0.0  # the key frame's time, to check that seeking landed on it
    stop_ms: float | None = None  # the next segment's first frame time: where this one ends at the latest
    landmarks: bool = False  # draw keypoints on the annotated output

    @property
    def label(self) -> str:
        name = Path(self.source).name
        return f"{name} [{self.chunk + 1}/{self.chunks}]" if self.chunks > 1 else name

    @property
    def last(self) -> bool:
        return self.chunk == self.chunks - 1


@dataclass(frozen=True)
class VideoIndex:
    """What ffprobe tells about a video's first stream without decoding it."""

    frames: int
    keyframes: tuple[int, ...]  # frame numbers (presentation order) of the key frames
    key_times_ms: tuple[float, ...]  # their times after the first frame
    last_ms: float  # the last frame's time after the first


def chunking_available() -> bool:
    return shutil.which("ffprobe") is not None and shutil.which("ffmpeg") is not None


def probe_video(path: Path) -> VideoIndex | None:
    """Frame count and key frames from the packets of the first video stream; None if ffprobe cannot tell
    (the video is then analysed as one unit, and a file that cannot be read is reported by its worker)."""
    command = ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
               "packet=pts,flags:stream=time_base", "-of", "json", str(path)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, check=False)
        data = json.loads(done.stdout) if done.returncode == 0 else {}
        time_base = Fraction(data["streams"][0]["time_base"])
        packets = [(int(p["pts"]), "K" in p.get("flags", "")) for p in data.get("packets", ())]
    except (OSError, subprocess.TimeoutExpired, ValueError, KeyError, IndexError, ZeroDivisionError) as exc:
        log.debug("%s: no key frame index (%s); analysed as one unit", path, exc)
        return None
    if not packets:
        return None
    order = sorted(pts for pts, _ in packets)
    rank = {pts: frame for frame, pts in enumerate(order)}
    if len(rank) != len(order):
        return None  # repeated timestamps: frame numbers would be ambiguous
    first = order[0]
    keys = sorted(rank[pts] for pts, key in packets if key)
    times = tuple(float((order[frame] - first) * time_base * 1000) for frame in keys)
    return VideoIndex(frames=len(order), keyframes=tuple(keys), key_times_ms=times,
                      last_ms=float((order[-1] - first) * time_base * 1000))


def segment_starts(index: VideoIndex, chunk_seconds: float) -> list[tuple[int, float]]:
    """(first frame, its time in ms) of each segment: a segment lasts at least ``chunk_seconds`` and ends
    where the next key frame after that begins; a tail shorter than half a segment stays with the one before."""
    starts = [(0, 0.0)]
    span_ms = chunk_seconds * 1000.0
    for frame, at in zip(index.keyframes, index.key_times_ms, strict=True):
        if frame > starts[-1][0] and at - starts[-1][1] >= span_ms - 1e-6 and index.last_ms - at >= span_ms / 2:
            starts.append((frame, at))
    return starts


@dataclass
class InputPlan:
    """One input and its units; ``frames`` is what the progress bar expects (None: unknown)."""

    input_index: int
    source: Path
    key: str
    kind: str
    frames: int | None
    units: list[WorkUnit]


def input_kind(path: Path) -> str:
    """Videos by suffix; anything else is tried as an image first, then as a whole video."""
    return VIDEO if path.suffix.lower() in VIDEO_SUFFIXES else IMAGE


def plan_input(input_index: int, source: Path, key: str, fmt: str, parts_dir: Path | None,
               chunk_seconds: float, first_unit: int = 0, landmarks: bool = False) -> InputPlan:
    """Units of one input, numbered from ``first_unit`` (the caller renumbers them in run order)."""
    kind = input_kind(source)
    common = {"input_index": input_index, "source": str(source), "path": str(source.resolve()),
              "camera": protocol.camera_name_from(source.stem), "fmt": fmt, "key": key,
              "parts_dir": str(parts_dir) if parts_dir is not None else None, "landmarks": landmarks}
    if kind == IMAGE:
        return InputPlan(input_index, source, key, kind, 1 if source.suffix.lower() in IMAGE_SUFFIXES else None,
                         [WorkUnit(index=first_unit, kind=IMAGE, **common)])
    index = probe_video(source) if chunking_available() else None
    if index is None:
        return InputPlan(input_index, source, key, kind, None, [WorkUnit(index=first_unit, kind=VIDEO, **common)])
    starts = segment_starts(index, chunk_seconds)
    units = []
    for chunk, (start, start_ms) in enumerate(starts):
        stop, stop_ms = starts[chunk + 1] if chunk + 1 < len(starts) else (None, None)
        units.append(WorkUnit(index=first_unit + chunk, kind=VIDEO, chunk=chunk, chunks=len(starts), start=start,
                              stop=stop, start_ms=start_ms, stop_ms=stop_ms, **common))
    return InputPlan(input_index, source, key, kind, index.frames, units)


def output_keys(sources: list[Path]) -> list[str]:
    """A unique output stem per input: its file stem, numbered on collisions (``clip``, ``clip-1``). The
    same inputs in the same order always get the same stems, which is what ``--resume`` relies on. A video
    is never called ``images``: ``images.csv`` holds the results of all images."""
    used: set[str] = set()
    keys = []
    for source in sources:
        base = source.stem or "file"
        key, counter = base, 1
        while key in used or (key == "images" and input_kind(source) == VIDEO):
            key = f"{base}-{counter}"
            counter += 1
        used.add(key)
        keys.append(key)
    return keys
