"""What face redaction costs: six live cameras at 30 fps (three one-face and three four-face videos, as in
``emotiond bench``'s six-camera run) with a viewer attached (a subscriber to every camera's frames, so the workers
encode and publish each frame), once with ``[privacy] faces = "show"`` and once with each redacting mode, in one
run on one machine (``python -m emotiond.benchmarks.bench_privacy``).

Prints a Markdown table: drops per camera after the warm-up (the limit is 2%), frames the viewer received, the
subscriber's p95 latency and the CPU of the daemon's processes per result, with the load average before and after:
a figure taken while other work ran says so. It also gives redaction's own CPU per frame (``redact`` on a 640x480
frame with one and four faces, this thread's CPU time, so other work on the machine does not inflate it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from emotiond.benchmarks import live
from emotiond.benchmarks.bench import build_videos
from emotiond.benchmarks.emotiond_run import DaemonSettings, run_emotiond
from emotiond.capture import synthetic
from emotiond.workers.redaction import redact

CAMERAS = 6
FRAMES = 600  # 20 s per camera at 30 fps
DROP_LIMIT = 0.02
MODES = ("show", "solid")
FACES_ENV = "EMOTIOND_PRIVACY__FACES"


def measure(videos: dict[str, Path], mode: str, frames: int, work: Path, workers: int | None,
            viewer: bool = True) -> dict[str, Any]:
    sources = live.alternating(videos, CAMERAS)
    flags = ("--workers", str(workers)) if workers else ()
    os.environ[FACES_ENV] = mode
    try:
        run = run_emotiond(sources, realtime=True, daemon=DaemonSettings(flags=flags), work=work,
                           watch_frames=viewer)
    finally:
        os.environ.pop(FACES_ENV, None)
    entry = live.live_entry(run, list(sources), frames)
    entry.update(mode=mode, viewer=viewer, frames_viewed=run.frames_received, spread=live.spread(entry["drop_rate"]),
                 cpu_ms_per_result=1000 * run.cpu_seconds / max(1, len(run.results)))
    return entry


def redaction_cpu_ms(repeats: int = 300) -> dict[str, dict[str, float]]:
    """CPU ms per frame of ``redact`` for each redacting mode, one and four faces, at the default mask scale."""
    figures: dict[str, dict[str, float]] = {}
    for faces in (1, 4):
        frame, boxes = synthetic.render(synthetic.SceneSpec(faces=faces, frames=1), 0)
        array = np.array(boxes)
        for mode in ("solid", "blur", "mosaic"):
            started = time.thread_time()
            for _ in range(repeats):
                redact(frame, array, mode, 1.3)
            figures.setdefault(mode, {})[f"{faces} face{'s' if faces > 1 else ''}"] = (
                (time.thread_time() - started) * 1000 / repeats)
    return figures


def row(entry: dict[str, Any]) -> str:
    rates = entry["drop_rate"]
    worst = max(rates.values())
    per_camera = ", ".join(f"{rates[name]:.1%}" for name in sorted(rates, key=lambda n: int(n[3:])))
    viewer = "" if entry["viewer"] else ", no viewer"
    verdict = "ok" if worst <= DROP_LIMIT else "OVER"
    return (f"| faces = \"{entry['mode']}\"{viewer} | {per_camera} | {worst:.1%} {verdict} | "
            f"{entry['frames_viewed']} | {entry['subscriber_latency_ms']['p95']:.0f} | "
            f"{entry['cpu_ms_per_result']:.2f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=FRAMES, help=f"frames per camera (default {FRAMES})")
    parser.add_argument("--modes", default=",".join(MODES), help="faces modes to run, show first (default "
                        "show,solid)")
    parser.add_argument("--no-viewer", action="store_true", help="no frame subscriber (the workers encode none)")
    parser.add_argument("--workers", type=int, default=None, help="daemon workers (default: the daemon's own)")
    parser.add_argument("--out", type=Path, default=None, help="write the entries as JSON here")
    args = parser.parse_args(argv)
    cpu = redaction_cpu_ms()
    print("redact(), CPU ms per 640x480 frame: " + "; ".join(
        f"{mode} {', '.join(f'{label} {ms:.2f}' for label, ms in by.items())}" for mode, by in cpu.items()), flush=True)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-privacy-") as folder:
        work = Path(folder)
        videos = build_videos(work, args.frames)
        entries = [measure(videos, mode, args.frames, work, args.workers, not args.no_viewer)
                   for mode in args.modes.split(",")]
    load_after = os.getloadavg()[0]
    lines = [f"{os.cpu_count()} cores, load average {load_before:.1f} before and {load_after:.1f} after; "
             f"{CAMERAS} live cameras at 30 fps, {args.frames} frames each, "
             f"{'no viewer' if args.no_viewer else 'a viewer of every camera attached'}.", "",
             "| set-up | drops per camera (cam0 …) | worst (limit 2%) | frames viewed | subscriber p95 ms | "
             "daemon CPU ms per result |", "|---|---|---|---|---|---|", *(row(entry) for entry in entries)]
    print("\n".join(lines))
    if args.out is not None:
        args.out.write_text(json.dumps({"load": [load_before, load_after], "redact_cpu_ms": cpu,
                                        "entries": entries}, indent=1))
    return 0 if all(max(e["drop_rate"].values()) <= DROP_LIMIT for e in entries) else 1


if __name__ == "__main__":
    sys.exit(main())
