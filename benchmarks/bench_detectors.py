"""The two face detectors side by side, in one run on one machine (part of ``emotiond bench``; also
``python -m emotiond.benchmarks.bench_detectors``).

For each backend (``haar``, the default, and ``blazeface``):

1. the daemon end to end in file mode on the benchmark's moving-face videos, with fer's figures for the same
   videos from the same run: throughput and its ratio to fer, recall, agreement with fer, CPU per frame;
2. the hard set (benchmarks/hardset.py), in-process: recall on turned and on small faces, false boxes on
   face-free images, and CPU per image (a whole-frame detection);
3. the tilting-heads clip with tracking, in-process: recall over the clip and over its frames where heads lean
   25 degrees or more, and CPU per frame; Haar with and without the turned-region search;
4. alignment (``[classifier] align``) on and off with BlazeFace: agreement with fer on the videos, and on the
   hard set's turned faces agreement with the emotion the same face gets upright.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from emotiond.benchmarks import fer_runner, hardset, scoring
from emotiond.benchmarks.emotiond_run import DaemonSettings, run_emotiond
from emotiond.capture import synthetic
from emotiond.core import protocol
from emotiond.core.settings import Settings, load_settings
from emotiond.workers.pipeline import Pipeline

BACKENDS = ("haar", "blazeface")
TILT_FRAMES = 240
VIDEO_CHUNK = 8  # frames classified per call in-process, as the worker batches them


# ---------------------------------------------------------------- 1. the daemon on the videos

def video_figures(videos: dict[str, Path], fer: dict[str, dict[str, Any]], daemon: DaemonSettings,
                  work: Path) -> dict[str, dict[str, Any]]:
    """backend -> video -> daemon figures, each run next to the other's."""
    figures: dict[str, dict[str, Any]] = {backend: {} for backend in BACKENDS}
    for label, video in videos.items():
        truth = synthetic.load_truth(video)
        for backend in BACKENDS:
            run = run_emotiond({"cam0": video}, realtime=False,
                               daemon=dataclasses.replace(daemon, flags=(*daemon.flags, "--detector", backend)),
                               work=work)
            fps = scoring.steady_fps(run.results)
            frames = max(1, len(run.results) - 1)
            figures[backend][label] = {
                "fps": fps, "ratio": fps / fer[label]["fps"] if fer[label]["fps"] else 0.0,
                "recall": scoring.recall(run.results, truth),
                "agreement_with_fer": scoring.agreement(run.results, fer[label]["faces"]),
                "cpu_per_frame_ms": run.cpu_seconds / frames * 1000,
                "detect_ms": scoring.stage_means(run.results)["detect"],
                "lost": scoring.lost_frames(run.results, len(truth)),
            }
            print(f"{label}, {backend}: {fps:.1f} fps ({figures[backend][label]['ratio']:.2f}x fer)", flush=True)
    return figures


# ---------------------------------------------------------------- in-process helpers

def pipeline(backend: str, **overrides: Any) -> Pipeline:
    settings: dict[str, Any] = {"detection": {"backend": backend}}
    for key, value in overrides.items():
        section, name = key.split(".")
        settings.setdefault(section, {})[name] = value
    return Pipeline(load_settings(None, settings))


def cpu_ms(function: Callable[[], Any]) -> tuple[Any, float]:
    """``function()`` and the CPU milliseconds this process spent on it (every thread)."""
    started = time.process_time()
    value = function()
    return value, (time.process_time() - started) * 1000


# ---------------------------------------------------------------- 2. the hard set

def hard_set_figures(images: list[hardset.HardImage]) -> dict[str, dict[str, Any]]:
    figures = {}
    for backend in BACKENDS:
        detector = pipeline(backend, **{"tracking.enabled": False}).detector

        def detect(pixels: np.ndarray, detector=detector) -> np.ndarray:
            return detector.detect(pixels, cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY)).boxes

        scores, spent = cpu_ms(lambda detect=detect: hardset.score(images, detect))
        figures[backend] = {"cpu_per_image_ms": spent / len(images),
                            **{kind: {"recall": s.recall, "false_boxes": s.false_boxes, "faces": s.faces,
                                      "images": s.images} for kind, s in scores.items()}}
        print(f"hard set, {backend}: turned {scores['rotated'].recall:.3f}, small {scores['small'].recall:.3f}, "
              f"false boxes {scores['none'].false_boxes}", flush=True)
    return figures


# ---------------------------------------------------------------- 3. tilting heads with tracking

def tilt_figures(frames: int = TILT_FRAMES) -> dict[str, dict[str, float]]:
    clip = [hardset.tilting_heads(index) for index in range(frames)]
    set_ups = {"haar, no turned regions": ("haar", {"detection.haar_rotations": []}),
               "haar (default: turned regions)": ("haar", {}),
               "blazeface": ("blazeface", {})}
    figures = {}
    for name, (backend, overrides) in set_ups.items():
        runner = pipeline(backend, **overrides)

        def follow(runner=runner) -> list[np.ndarray]:
            return [runner.detect("tilt", seq, frame).boxes for seq, (frame, _, _) in enumerate(clip)]

        found, spent = cpu_ms(follow)
        hits = [(any(hardset.iou(box, other) >= scoring.MATCH_IOU for other in boxes), abs(roll))
                for boxes, (_, truth, rolls) in zip(found, clip, strict=True)
                for box, roll in zip(truth, rolls, strict=True)]
        tilted = [hit for hit, roll in hits if roll >= 25]
        figures[name] = {"recall": sum(hit for hit, _ in hits) / len(hits),
                         "tilted_recall": sum(tilted) / len(tilted), "cpu_per_frame_ms": spent / frames}
        print(f"tilting heads, {name}: recall {figures[name]['recall']:.3f}, "
              f"leaning >= 25 degrees {figures[name]['tilted_recall']:.3f}", flush=True)
    return figures


# ---------------------------------------------------------------- 4. alignment

def read_frames(video: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def video_results(runner: Pipeline, frames: list[np.ndarray]) -> list[protocol.Result]:
    results = []
    for begin in range(0, len(frames), VIDEO_CHUNK):
        chunk = list(enumerate(frames[begin: begin + VIDEO_CHUNK], start=begin))
        results += runner.process("video", chunk)
    return results


def alignment_figures(videos: dict[str, Path], fer: dict[str, dict[str, Any]],
                      images: list[hardset.HardImage]) -> dict[str, dict[str, float]]:
    turned = [image for image in images if image.kind == "rotated"]
    figures = {}
    for align in (True, False):
        runner = pipeline("blazeface", **{"classifier.align": align, "tracking.enabled": False})
        entry = {f"agreement_with_fer {label}": scoring.agreement(video_results(runner, read_frames(video)),
                                                                  fer[label]["faces"])
                 for label, video in videos.items()}
        same = compared = 0
        for image in turned:
            (tilted,), (upright,) = runner.process("hard", [(0, image.pixels)]), \
                runner.process("hard", [(0, hardset.upright_twin(image))])
            if tilted.faces and upright.faces:
                compared += 1
                same += tilted.faces[0].emotion == upright.faces[0].emotion
        entry["turned_faces_agree_with_upright"] = same / compared if compared else 0.0
        figures["on" if align else "off"] = entry
        print(f"alignment {'on' if align else 'off'}: {entry}", flush=True)
    return figures


# ---------------------------------------------------------------- the whole comparison

def compare(videos: dict[str, Path], fer: dict[str, dict[str, Any]], daemon: DaemonSettings,
            work: Path) -> dict[str, Any]:
    """Every figure of both backends; ``fer`` holds fer's raw figures per video label from the same run."""
    images = hardset.hard_set()
    return {"load": os.getloadavg()[0],
            "videos": video_figures(videos, fer, daemon, work),
            "fer": {label: {"fps": f["fps"], "cpu_per_frame_ms": f["cpu_per_frame_ms"],
                            "recall": scoring.fer_recall(f["faces"], synthetic.load_truth(videos[label]))}
                    for label, f in fer.items()},
            "hard_set": hard_set_figures(images),
            "tilting_heads": tilt_figures(),
            "alignment": alignment_figures(videos, fer, images)}


def render(report: dict[str, Any]) -> str:
    videos, hard = report["videos"], report["hard_set"]
    labels = list(report["fer"])
    lines = ["Face detectors side by side (file mode, the daemon end to end; fer from the same run):", "",
             "| video | detector | fps (fer / ours) | ratio to fer | recall (fer / ours) | agreement with fer | "
             "CPU ms/frame (fer / ours) | detect ms/frame |",
             "|---|---|---|---|---|---|---|---|"]
    for label in labels:
        fer = report["fer"][label]
        for backend in BACKENDS:
            v = videos[backend][label]
            lines.append(f"| {label} | {backend} | {fer['fps']:.1f} / {v['fps']:.1f} | **{v['ratio']:.2f}x** | "
                         f"{fer['recall']:.3f} / {v['recall']:.3f} | {v['agreement_with_fer']:.3f} | "
                         f"{fer['cpu_per_frame_ms']:.1f} / {v['cpu_per_frame_ms']:.1f} | {v['detect_ms']:.2f} |")
    lines += ["", "Hard set (benchmarks/hardset.py), whole-frame detection without tracking:", "",
              "| detector | recall, faces turned 20-30° | recall, faces 50-60 px wide | false boxes, "
              f"{len(hardset.FACE_FREE)} face-free images | false boxes beside true faces | CPU ms/image |",
              "|---|---|---|---|---|---|"]
    for backend in BACKENDS:
        h = hard[backend]
        lines.append(f"| {backend} | {h['rotated']['recall']:.3f} | {h['small']['recall']:.3f} | "
                     f"{h['none']['false_boxes']} | {h['rotated']['false_boxes'] + h['small']['false_boxes']} | "
                     f"{h['cpu_per_image_ms']:.1f} |")
    lines += ["", "Heads rolling up to ±30° with tracking on (in-process):", "",
              "| set-up | recall | recall, leaning ≥ 25° | CPU ms/frame |", "|---|---|---|---|"]
    for name, t in report["tilting_heads"].items():
        lines.append(f"| {name} | {t['recall']:.3f} | {t['tilted_recall']:.3f} | {t['cpu_per_frame_ms']:.1f} |")
    align = report["alignment"]
    keys = [key for key in align["on"] if key.startswith("agreement_with_fer")]
    lines += ["", "Alignment with BlazeFace (crops turned so the eyes are level):", "",
              "| align | " + " | ".join(key.replace("agreement_with_fer ", "agreement with fer, ") for key in keys)
              + " | turned faces: same emotion as upright |", "|---|" + "---|" * (len(keys) + 1)]
    for state in ("on", "off"):
        entry = align[state]
        lines.append(f"| {state} | " + " | ".join(f"{entry[key]:.3f}" for key in keys)
                     + f" | {entry['turned_faces_agree_with_upright']:.3f} |")
    lines += ["", f"Load average during the run: {report['load']:.1f} on {os.cpu_count()} cores."]
    return "\n".join(lines) + "\n"


def moving_face_videos(root: Path, frames: int) -> dict[str, Path]:
    """The videos ``emotiond bench`` measures (bench.py hands its own in when it runs this comparison)."""
    return {label: synthetic.write_video(root / f"{faces}_faces.mp4", synthetic.SceneSpec(faces=faces, frames=frames))
            for label, faces in (("1 face", 1), ("4 faces", 4))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300, help="frames per test video")
    parser.add_argument("--out", type=Path, default=Path("benchmarks") / "results",
                        help="folder for detectors.md and detectors.json")
    args = parser.parse_args(argv)
    Settings()  # a broken environment is an error before anything runs
    work = Path(tempfile.mkdtemp(prefix="emotiond-bench-detectors-"))
    try:
        videos = moving_face_videos(work, args.frames)
        fer_by_video = fer_runner.run_fer(fer_runner.fer_python(), list(videos.values()))
        report = compare(videos, {label: fer_by_video[video] for label, video in videos.items()},
                         DaemonSettings(), work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    markdown = render(report)
    print(markdown)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "detectors.md").write_text(markdown)
    (args.out / "detectors.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
