"""CPU per stage per face: where a worker's time goes, measured in-process on the pipeline every worker runs
(``python -m emotiond.benchmarks.stage_cpu``; ``emotiond bench`` adds the table to its report).

Each frame goes the worker's way: its bus message decoded (raw pixels, msgpack header), grey, faces found
(Haar: regions around known faces, with full scans on the scanner thread; BlazeFace: the whole frame), crops
(upright where the roll is known), the classifier (one LiteRT call per frame's faces), the wire faces
(scores, tracks, smoothing) and the result's msgpack. Every stage is the CPU of the calling thread
(``time.thread_time``, so what the rest of the machine runs does not count); ``scans`` is the CPU of every
other thread of the process (Haar's scanner). ``model`` is LiteRT's own work; everything else is around it.

Haar is measured twice in the same run: as configured, and with ``[tracking] reuse_stable`` and
``coarse_scans`` off and ``[detection] region_min_neighbors`` at 5 (the previous behaviour), so the ratio between
them holds on a busy machine too.
Recall (IoU >= 0.4 with the true boxes) is given for each, so a saving that costs faces shows.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from emotiond.benchmarks import harness, scoring
from emotiond.benchmarks.bench_detectors import read_frames
from emotiond.capture import synthetic
from emotiond.core import protocol
from emotiond.core.lifecycle import configure_threads
from emotiond.core.settings import load_settings
from emotiond.workers.pipeline import Pipeline

STAGES = ("decode", "gray", "detect", "scans", "crop", "classify", "faces", "encode")
WARM_UP_FRAMES = 5
BASELINE = "haar, previous (no reuse, no coarse scans, 5 region neighbours)"
SET_UPS = {"haar": {"detection": {"backend": "haar"}},
           BASELINE: {"detection": {"backend": "haar", "region_min_neighbors": 5},
                      "tracking": {"reuse_stable": False, "coarse_scans": False}},
           "blazeface": {"detection": {"backend": "blazeface"}}}


def measure_video(runner: Pipeline, frames: list[np.ndarray], truth: list) -> dict[str, Any]:
    """Stage CPU (ms per frame and per face) and recall of one video through ``runner``, as a worker runs it."""
    wire = [protocol.encode_frame(protocol.FrameHeader("bench", seq, 0.0, frame.shape), frame)
            for seq, frame in enumerate(frames)]
    for seq in range(min(WARM_UP_FRAMES, len(frames))):  # interpreters and cascades allocated, not measured
        runner.process("warm-up", [(seq, frames[seq])])
    clock = runner.clock
    clock.ms.clear()
    results = []
    process_started, thread_started = time.process_time(), time.thread_time()
    for parts in wire:
        lap = clock.now()
        frame = protocol.decode(parts)
        lap = clock.lap("decode", lap)
        detection = runner.detect("bench", frame.header.seq, frame.pixels)
        (faces,) = runner.finish([detection])
        result = runner.result(detection, faces, captured_at=0.0, latency_ms={}, worker="bench")
        lap = clock.now()
        protocol.encode_result(result)
        clock.lap("encode", lap)
        results.append(result)
    thread_ms = (time.thread_time() - thread_started) * 1000
    clock.ms["scans"] = max(0.0, (time.process_time() - process_started) * 1000 - thread_ms)
    faces = sum(len(r.faces) for r in results)
    per_frame = {stage: clock.ms.get(stage, 0.0) / len(frames) for stage in STAGES}
    total = sum(per_frame.values())
    return {"frames": len(frames), "faces_per_frame": faces / len(frames),
            "recall": scoring.recall(results, truth), "ms_per_frame": per_frame,
            "ms_per_face": {stage: value * len(frames) / max(1, faces) for stage, value in per_frame.items()},
            "total_ms_per_frame": total, "model_share": per_frame["classify"] / total if total else 0.0}


def measure(videos: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """Every set-up on every video, one OpenCV thread as in a worker of a two-worker daemon on two cores."""
    configure_threads(1)
    frames = {label: read_frames(video) for label, video in videos.items()}
    truth = {label: synthetic.load_truth(video) for label, video in videos.items()}
    report: dict[str, dict[str, Any]] = {}
    for name, overrides in SET_UPS.items():
        for label in videos:
            runner = Pipeline(load_settings(None, overrides))  # a fresh pipeline: no tracks from another video
            entry = measure_video(runner, frames[label], truth[label])
            report[f"{label} | {name}"] = {"video": label, "set_up": name, **entry}
            print(f"stages, {label}, {name}: {entry['total_ms_per_frame']:.2f} ms CPU per frame, model "
                  f"{entry['ms_per_frame']['classify']:.2f} ms, recall {entry['recall']:.3f}", flush=True)
    return report


def render(report: dict[str, dict[str, Any]]) -> str:
    lines = ["Worker CPU per stage (in-process, the worker's pipeline; ms per frame, and per face in brackets):", "",
             "| video | set-up | " + " | ".join(STAGES) + " | total ms/frame | model share | recall |",
             "|---|---|" + "---|" * len(STAGES) + "---|---|---|"]
    for entry in report.values():
        cells = [f"{entry['ms_per_frame'][stage]:.2f} ({entry['ms_per_face'][stage]:.2f})" for stage in STAGES]
        lines.append(f"| {entry['video']} | {entry['set_up']} | " + " | ".join(cells)
                     + f" | {entry['total_ms_per_frame']:.2f} | {entry['model_share']:.0%} | {entry['recall']:.3f} |")
    baseline = {e["video"]: e for e in report.values() if e["set_up"] == BASELINE}
    lines.append("")
    for entry in report.values():
        before = baseline.get(entry["video"])
        if entry["set_up"] == "haar" and before:
            now, then = entry["total_ms_per_frame"], before["total_ms_per_frame"]
            lines.append(f"* {entry['video']}: haar {now:.2f} ms CPU per frame against {then:.2f} with the previous "
                         f"behaviour in the same run (**{then / max(1e-9, now):.2f}x** less); recall "
                         f"{entry['recall']:.3f} against {before['recall']:.3f}.")
    lines += ["", "* **decode**: the frame's bus message to pixels. **gray**: the grey frame detection shares. "
              "**detect**: finding faces on the worker's thread (Haar: regions around known faces and synchronous "
              "scans). **scans**: every other thread (Haar's background full scans). **crop**: face crops, turned "
              "upright where the roll is known. **classify**: the LiteRT call, the model's own work. **faces**: "
              "scores, tracks and smoothing for the wire. **encode**: the result's msgpack. CPU of the measuring "
              "thread, so other work on the machine adds little; figures taken on a shared machine are still "
              "labelled \"under load\" where they are quoted."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300, help="frames per test video (default 300)")
    parser.add_argument("--out", type=Path, default=None, help="folder for stage_cpu.md/.json (default: print only)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="emotiond-stages-") as work:
        videos = {"1 face": synthetic.write_video(Path(work) / "one_face.mp4",
                                                  synthetic.SceneSpec(faces=1, frames=args.frames)),
                  "4 faces": synthetic.write_video(Path(work) / "four_faces.mp4",
                                                   synthetic.SceneSpec(faces=4, frames=args.frames))}
        report = measure(videos)
    markdown = f"Load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the end.\n\n" + render(report)
    print(markdown)
    if args.out is not None:
        harness.write_results(args.out, "stage_cpu", markdown, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
