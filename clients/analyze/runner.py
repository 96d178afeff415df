"""``emotiond analyze``: faces and emotions in photos and videos, with no daemon, on all cores or a cluster.

It runs the daemon's own pipeline (through the public ``Analyzer``) and drawing code, so a file analysed
here gets the same boxes, track ids and emotions a worker publishes for it. Results use the event schema,
with two extra keys: ``source`` (the input path) and ``t`` (seconds into a video, 0 for images). Nothing
here opens a window, so it works on headless machines.

Inputs become work units (an image, or a segment of a video: see ``plan``) that an engine runs in
parallel (``engines/``: local processes or Dask). This module hands units to the engine and writes what comes
back strictly in input and frame order, so the output never depends on which worker finished first: JSON
lines on stdout, and in ``--out`` per video ``<name>.jsonl`` or ``<name>.csv`` and ``<name>.annotated.mp4``,
per image ``<name>.annotated.png``, and ``images.jsonl`` or ``images.csv`` for all images. Outputs are atomic
and an input is complete once its manifest is written (``output``), which ``--resume`` relies on.

A file that cannot be read is reported on stderr as one line and skipped; the others are still done.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from emotiond.capture.sources import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from emotiond.clients import records
from emotiond.clients.analyze.engines.base import Done, Engine, Progress, Retry
from emotiond.clients.analyze.output import (
    Manifest,
    OutputError,
    OutputFolder,
    TextSink,
    join_segments,
    read_lines,
    results_fingerprint,
    sizes,
    source_identity,
)
from emotiond.clients.analyze.plan import IMAGE, VIDEO, InputPlan, WorkUnit, input_kind, output_keys, plan_input
from emotiond.clients.analyze.progress import RunProgress
from emotiond.clients.analyze.unit import UnitResult
from emotiond.core.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_CHUNK_SECONDS = 30.0
PLANNING_THREADS = 2
POLL_SECONDS = 0.1


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
    resume: bool = False
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS
    landmarks: bool = False  # draw keypoints on annotated outputs
    stdout: IO[str] = field(default_factory=lambda: sys.stdout)
    stderr: IO[str] = field(default_factory=lambda: sys.stderr)


@dataclass
class Skipped:
    """An input whose outputs are complete from an earlier run (``--resume``)."""

    input_index: int
    source: Path
    kind: str
    manifest: Manifest


@dataclass
class Unreadable:
    input_index: int
    source: Path
    message: str


@dataclass
class Planned:
    plan: InputPlan
    identity: dict[str, Any]


PlanItem = Planned | Skipped | Unreadable


@dataclass
class _Input:
    """An input whose units are being written, in order."""

    plan: InputPlan
    identity: dict[str, Any]
    kind: str
    sink: TextSink | None = None
    parts: list[Path] = field(default_factory=list)
    records: list[Any] = field(default_factory=list)
    frames: int = 0
    faces: int = 0
    written: int = 0  # frames of its units written so far, also of units that failed
    error: str | None = None


@dataclass
class Summary:
    files: int = 0
    skipped: int = 0
    failed: int = 0
    frames: int = 0
    faces: int = 0
    seconds: float = 0.0
    warmup_seconds: float | None = None  # until the first frame was done (engine start-up, model loading)
    engine: str = "no engine started: nothing to analyse"

    def line(self) -> str:
        rate = self.frames / self.seconds if self.seconds > 0 else 0.0
        return (f"emotiond analyze: {self.files} files ({self.skipped} already complete, {self.failed} failed), "
                f"{self.frames} frames, {self.faces} faces in {self.seconds:.1f} s: {rate:.1f} frames/s "
                f"[{self.engine}]")


class Analysis:
    """Plans the inputs, runs their units on an engine and writes the results in order."""

    def __init__(self, settings: Settings, options: AnalyzeOptions, engine_factory: Callable[[], Engine]):
        self.settings = settings
        self.options = options
        self.engine_factory = engine_factory
        self.folder = OutputFolder(options.out) if options.out is not None else None
        self.fingerprint = results_fingerprint(settings, options.fmt, options.chunk_seconds, options.landmarks)
        self.summary = Summary()
        self.failures: list[str] = []
        self._images: list[tuple[int, list[Any]]] = []
        self._progress: RunProgress | None = None
        # the run's queues: what to write next (in order), units not yet submitted, results not yet written
        self._order: deque[PlanItem | WorkUnit] = deque()
        self._waiting: deque[WorkUnit] = deque()
        self._results: dict[int, UnitResult] = {}
        self._submitted: set[int] = set()
        self._unit_frames: dict[int, int] = {}
        self._written_frames = 0
        self._next_unit = 0
        self._current: _Input | None = None
        self._inputs_written = 0
        self._unplanned: set[int] = set()
        self._frames_known = 0  # frames expected in the inputs planned so far
        self._frames_dropped = 0  # of those, in inputs that failed
        self._inputs_known = 0

    # ------------------------------------------------------------ the run
    def run(self, inputs: list[Path]) -> int:
        started = time.monotonic()
        self.summary.files = len(inputs)
        self._progress = RunProgress("analyze", len(inputs), self.options.stderr,
                                     enabled=self.options.progress or self.options.stderr.isatty())
        if self.folder is not None:
            self.folder.open()
        planner = ThreadPoolExecutor(PLANNING_THREADS, thread_name_prefix="plan")
        try:
            keys = output_keys(inputs)
            plans = [planner.submit(self._plan, index, path, key)
                     for index, path, key in zip(range(len(inputs)), inputs, keys, strict=True)]
            self._unplanned = set(range(len(plans)))
            self._drive(plans)
            self._write_images()
            self._show_progress(plans)  # the bar's last state: everything done
        finally:
            planner.shutdown(wait=False, cancel_futures=True)
            if self._current is not None and self._current.sink is not None:
                self._current.sink.discard()
            if self.folder is not None:
                self.folder.close()
            self.summary.seconds = time.monotonic() - started
            first = self._progress.first_frame_at
            self.summary.warmup_seconds = None if first is None else first - started
            self._progress.close()
        self.options.stderr.write(self.summary.line() + "\n")
        self.options.stderr.flush()
        return 1 if self.failures else 0

    def _plan(self, input_index: int, source: Path, key: str) -> PlanItem:
        """Runs on a planning thread: check the input, skip it if complete, else split it into units."""
        if not source.exists():
            return Unreadable(input_index, source, "no such file")
        if not source.is_file():
            return Unreadable(input_index, source, "not a regular file")
        identity = source_identity(source)
        if identity is None:
            return Unreadable(input_index, source, "cannot read")
        if self.options.resume and self.folder is not None:
            manifest = self.folder.complete(key, source, self.fingerprint)
            if manifest is not None:
                return Skipped(input_index, source, input_kind(source), manifest)
        parts = self.folder.tmp if self.folder is not None else None
        plan = plan_input(input_index, source, key, self.options.fmt, parts, self.options.chunk_seconds,
                          landmarks=self.options.landmarks)
        return Planned(plan, identity)

    def _drive(self, plans: list[Future]) -> None:
        """Keep about two units per engine slot submitted, write what is ready in order, show progress. The
        engine starts with the first unit, so a run that only finds complete inputs starts none."""
        engine: Engine | None = None
        next_plan = 0
        try:
            while True:
                while True:
                    if self._waiting:
                        if engine is None:
                            engine = self.engine_factory()
                            self.summary.engine = engine.description
                        if len(self._submitted) >= 2 * engine.slots + 2:
                            break
                        unit = self._waiting.popleft()
                        engine.submit(unit)
                        self._submitted.add(unit.index)
                        continue
                    if next_plan >= len(plans) or (self._submitted and not plans[next_plan].done()):
                        break
                    self._accept(plans[next_plan].result())
                    next_plan += 1
                self._write_ready()
                if not self._order and not self._waiting and next_plan >= len(plans):
                    return
                if engine is None:
                    continue
                for event in engine.poll(POLL_SECONDS):
                    if isinstance(event, Progress):
                        self._unit_frames[event.index] = event.frames
                    elif isinstance(event, Retry):
                        self._unit_frames[event.index] = 0
                    elif isinstance(event, Done):
                        self._results[event.result.index] = event.result
                        self._unit_frames[event.result.index] = event.result.frames
                self._show_progress(plans)
        finally:
            if engine is not None:
                engine.close()

    def _accept(self, item: PlanItem) -> None:
        """A planned input joins the queues; its units get their place in the run's order."""
        if isinstance(item, Planned):
            units = [dataclasses.replace(u, index=self._next_unit + n) for n, u in enumerate(item.plan.units)]
            self._next_unit += len(units)
            item.plan.units = units
            self._order.append(item)
            self._order.extend(units)
            self._waiting.extend(units)
        else:
            self._order.append(item)

    def _show_progress(self, plans: list[Future]) -> None:
        """Frames done against frames expected: known for planned videos, estimated for the rest."""
        assert self._progress is not None
        for index in [i for i in self._unplanned if plans[i].done()]:
            self._unplanned.discard(index)
            item = plans[index].result()
            if isinstance(item, Planned) and item.plan.frames is not None:
                self._frames_known += item.plan.frames
                self._inputs_known += 1
        pending = sum(1 for f in plans if not f.done()) if self._unplanned else 0
        expected = None
        if self._inputs_known:
            expected = self._frames_known + round(pending * self._frames_known / self._inputs_known) \
                - self._frames_dropped
        done_frames = self._written_frames + sum(self._unit_frames.values())
        files_done = self.summary.skipped + self.summary.failed + self._inputs_written
        self._progress.update(files_done, done_frames, expected)

    # ------------------------------------------------------------ writing, in order
    def _write_ready(self) -> None:
        while self._order:
            head = self._order[0]
            if isinstance(head, WorkUnit):
                result = self._results.pop(head.index, None)
                if result is None:
                    return
                self._order.popleft()
                self._submitted.discard(head.index)
                self._unit_frames.pop(head.index, None)
                self._written_frames += result.frames
                if self._current is not None:
                    self._current.written += result.frames
                self._write_unit(head, result)
                continue
            self._order.popleft()
            if isinstance(head, Planned):
                self._current = _Input(head.plan, head.identity, head.plan.kind)
            elif isinstance(head, Skipped):
                self._replay(head)
            else:
                self._fail(head.source, head.message)

    def _write_unit(self, unit: WorkUnit, result: UnitResult) -> None:
        state = self._current
        assert state is not None and state.plan.input_index == unit.input_index
        if state.error is None:
            if result.error is not None:
                state.error = result.error
            else:
                try:
                    self._take(state, unit, result)
                except OutputError as exc:
                    state.error = str(exc)
        if state.error is not None and result.annotated:
            Path(result.annotated).unlink(missing_ok=True)
        if unit.last:
            self._current = None
            self._finish_input(state)

    def _take(self, state: _Input, unit: WorkUnit, result: UnitResult) -> None:
        if result.warning:
            self._message(f"emotiond analyze: {unit.source}: {result.warning}")
        state.kind = result.kind
        state.frames += result.frames
        state.faces += result.faces
        if self.options.fmt == "json" and result.lines:
            self.options.stdout.write("".join(result.lines))
            self.options.stdout.flush()
        if result.annotated:
            state.parts.append(Path(result.annotated))
        if state.kind == IMAGE:
            state.records = result.lines if self.options.fmt == "json" else result.rows
            return
        if self.folder is None:
            return
        if state.sink is None:
            suffix = ".jsonl" if self.options.fmt == "json" else ".csv"
            state.sink = TextSink(self.folder, f"{state.plan.key}{suffix}")
            if self.options.fmt == "csv":
                state.sink.write(records.csv_header())
        state.sink.write("".join(result.lines) if self.options.fmt == "json" else records.csv_text(result.rows))

    def _finish_input(self, state: _Input) -> None:
        source = state.plan.source
        if state.error is None and self.folder is not None:
            try:
                self._publish(state)
            except OutputError as exc:
                state.error = str(exc)
        if state.error is not None:
            if state.sink is not None:
                state.sink.discard()
            for part in state.parts:
                part.unlink(missing_ok=True)
            self._written_frames -= state.written  # the bar counts frames of inputs that are done
            self._frames_dropped += state.plan.frames or 0
            self._fail(source, state.error)
            return
        expected = state.plan.frames
        if state.kind == VIDEO and expected and state.frames < expected * 0.9:
            self._message(f"emotiond analyze: {source}: decoded {state.frames} of {expected} frames; "
                          "the file may be truncated")
        self._inputs_written += 1
        self.summary.frames += state.frames
        self.summary.faces += state.faces
        if state.kind == IMAGE:
            self._images.append((state.plan.input_index, state.records))

    def _publish(self, state: _Input) -> None:
        """Outputs to their final names, then the manifest that marks the input complete."""
        assert self.folder is not None
        key = state.plan.key
        self.folder.forget(key)
        names = []
        if state.parts:
            if state.kind == VIDEO:
                joined = self.folder.temporary(f"{key}.annotated.mp4")
                join_segments(state.parts, joined, self.folder.temporary(f"{key}.segments"))
                self.folder.publish(joined, f"{key}.annotated.mp4")
                names.append(f"{key}.annotated.mp4")
            else:
                self.folder.publish(state.parts[0], f"{key}.annotated.png")
                names.append(f"{key}.annotated.png")
        if state.sink is not None:
            names.append(state.sink.publish().name)
            state.sink = None
        self.folder.write_manifest(Manifest(
            key=key, kind=state.kind, source=state.identity, fingerprint=self.fingerprint, frames=state.frames,
            faces=state.faces, outputs=sizes(self.folder.root, names),
            records=state.records if state.kind == IMAGE else []))

    def _replay(self, item: Skipped) -> None:
        """An input complete from an earlier run: its results still go to stdout and into images.*."""
        manifest = item.manifest
        self.summary.skipped += 1
        log.info("%s: already complete, skipped", item.source)
        if manifest.kind == IMAGE:
            self._images.append((item.input_index, manifest.records))
            if self.options.fmt == "json":
                self.options.stdout.write("".join(manifest.records))
        elif self.options.fmt == "json" and self.folder is not None:
            jsonl = f"{manifest.key}.jsonl"
            if jsonl in manifest.outputs:
                for line in read_lines(self.folder.root / jsonl):
                    self.options.stdout.write(line)
        self.options.stdout.flush()

    def _write_images(self) -> None:
        if self.folder is None or not self._images:
            return
        ordered = [record for _, batch in sorted(self._images, key=lambda pair: pair[0]) for record in batch]
        try:
            if self.options.fmt == "json":
                self.folder.write_text("images.jsonl", "".join(ordered))
            else:
                self.folder.write_text("images.csv", records.csv_text(ordered, header=True))
        except OutputError as exc:
            self._fail(self.folder.root / "images", str(exc))

    def _fail(self, source: Path, message: str) -> None:
        self.failures.append(str(source))
        self.summary.failed += 1
        self._message(f"emotiond analyze: {source}: {message}")

    def _message(self, line: str) -> None:
        """One line on stderr, above the progress bar."""
        if self._progress is not None:
            self._progress.message(line)
        else:
            self.options.stderr.write(line + "\n")
