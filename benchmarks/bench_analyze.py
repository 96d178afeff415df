"""``emotiond analyze`` on a folder of videos: one process, one process per core, and a Dask LocalCluster.

Each configuration analyses the same videos (640x480, 30 fps, real face photos moving, 1 or 2 faces) with
``--out`` (annotated videos and a CSV per video), as a user would. Rounds run every configuration once, in
turn, so a change in the machine's load hits all of them; the medians over rounds are reported with their
range, each configuration's ratio to one process, the load average before each run, and the CPU seconds the
run took (all processes), which a busy machine disturbs less than wall time.

Two rates are given: over the whole run (starting processes and loading the model included), and after the
first frame is done (start-up excluded, what a long archive sees). One process already keeps more than one core
busy (the Haar detector's full-frame scans run on a background thread), so a last configuration holds one
process to one core: the ratio to it is what each added core brings. Usage::

    .venv/bin/python benchmarks/bench_analyze.py [--videos 6] [--frames 300] [--rounds 3] [--workers N] \
        [--chunk-seconds 5] [--json results.json]
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import resource
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emotiond.capture import synthetic
from emotiond.clients.analyze.engines.base import cpu_count
from emotiond.clients.analyze.engines.choose import make_engine
from emotiond.clients.analyze.runner import Analysis, AnalyzeOptions
from emotiond.clients.analyze.unit import settings_payload
from emotiond.core.lifecycle import exit_on_sigterm
from emotiond.core.settings import Settings, load_settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineSetup:
    label: str
    engine: str
    workers: int
    one_core: bool = False  # the run's processes may use one core only (like ``taskset -c 0``)


@dataclass
class EngineRun:
    frames: int
    wall_s: float
    warmup_s: float
    cpu_s: float
    load: float

    @property
    def rate(self) -> float:
        return self.frames / self.wall_s

    @property
    def steady_rate(self) -> float:
        return self.frames / max(1e-6, self.wall_s - self.warmup_s)


def make_videos(folder: Path, count: int, frames: int) -> list[Path]:
    return [synthetic.write_video(folder / f"video{index:02d}.mp4",
                                  synthetic.SceneSpec(faces=1 + index % 2, frames=frames))
            for index in range(count)]


def cpu_seconds() -> float:
    """CPU of this process and of every child process that has ended (engines end theirs before returning)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_once(config: EngineSetup, videos: list[Path], settings: Settings, scratch: Path,
             chunk_seconds: float) -> EngineRun:
    out = Path(tempfile.mkdtemp(dir=scratch))
    options = AnalyzeOptions(out=out, fmt="csv", chunk_seconds=chunk_seconds, stdout=io.StringIO(),
                             stderr=io.StringIO())
    payload = settings_payload(settings)
    analysis = Analysis(settings, options, lambda: make_engine(config.engine, payload, config.workers, None, 10.0,
                                                               "WARNING"))
    load = os.getloadavg()[0]
    cpu_before = cpu_seconds()
    cores = os.sched_getaffinity(0)
    if config.one_core:
        os.sched_setaffinity(0, {min(cores)})  # inherited by the processes the engine starts
    try:
        code = analysis.run(videos)
    finally:
        os.sched_setaffinity(0, cores)
    if code != 0:
        raise SystemExit(f"{config.label}: analyze failed: {options.stderr.getvalue()}")  # type: ignore[attr-defined]
    summary = analysis.summary
    return EngineRun(frames=summary.frames, wall_s=summary.seconds, warmup_s=summary.warmup_seconds or 0.0,
               cpu_s=cpu_seconds() - cpu_before, load=load)


def spread(values: list[float], digits: int = 1) -> str:
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def report(configs: list[EngineSetup], runs: dict[str, list[EngineRun]]) -> str:
    """Medians (min-max); ratios of medians to one process, and to one process held to one core."""
    def median(config: EngineSetup, rate: str) -> float:
        return statistics.median(getattr(r, rate) for r in runs[config.label])

    one_process = configs[0]
    one_core = next(c for c in configs if c.one_core)
    lines = [f"machine: {cpu_count()} cores; {len(runs[one_process.label])} rounds; median (min-max)", "",
             "| configuration | frames | frames/s after start-up | ratio to 1 process | ratio to 1 core | "
             "frames/s whole run | ratio to 1 process | start-up s | CPU s | load before |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for config in configs:
        done = runs[config.label]
        lines.append(
            f"| {config.label} | {done[0].frames} | {spread([r.steady_rate for r in done])} | "
            f"**{median(config, 'steady_rate') / median(one_process, 'steady_rate'):.2f}x** | "
            f"{median(config, 'steady_rate') / median(one_core, 'steady_rate'):.2f}x | "
            f"{spread([r.rate for r in done])} | {median(config, 'rate') / median(one_process, 'rate'):.2f}x | "
            f"{spread([r.warmup_s for r in done])} | {spread([r.cpu_s for r in done])} | "
            f"{spread([r.load for r in done], 2)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=6, help="videos in the folder (default: 6)")
    parser.add_argument("--frames", type=int, default=300, help="frames per video (default: 300, 10 s)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every configuration (default: 3)")
    parser.add_argument("--workers", type=int, default=cpu_count(), help="processes for N (default: cores)")
    parser.add_argument("--chunk-seconds", type=float, default=5.0, help="segment length (default: 5)")
    parser.add_argument("--json", type=Path, default=None, help="also write the runs as JSON here")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    settings = load_settings()
    configs = [EngineSetup("local, 1 process", "local", 1),
               EngineSetup(f"local, {args.workers} processes", "local", args.workers),
               EngineSetup(f"dask LocalCluster, {args.workers} workers", "dask", args.workers),
               EngineSetup("local, 1 process held to 1 core", "local", 1, one_core=True)]
    runs: dict[str, list[EngineRun]] = {c.label: [] for c in configs}
    with tempfile.TemporaryDirectory(prefix="bench-analyze-") as scratch:
        videos = make_videos(Path(scratch) / "videos", args.videos, args.frames)
        for round_number in range(1, args.rounds + 1):
            for config in configs:
                run = run_once(config, videos, settings, Path(scratch), args.chunk_seconds)
                runs[config.label].append(run)
                print(f"round {round_number} {config.label}: {run.frames} frames in {run.wall_s:.1f} s "
                      f"({run.steady_rate:.1f} frames/s after {run.warmup_s:.1f} s start-up), "
                      f"CPU {run.cpu_s:.1f} s, load {run.load:.2f}", file=sys.stderr, flush=True)
    print(f"emotiond analyze on {args.videos} videos x {args.frames} frames (640x480, 30 fps), "
          f"--out with annotated videos and CSV, --chunk-seconds {args.chunk_seconds:g}")
    print(report(configs, runs))
    if args.json is not None:
        data: dict[str, Any] = {c.label: [vars(r) for r in runs[c.label]] for c in configs}
        args.json.write_text(json.dumps(data, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
