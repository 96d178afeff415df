"""Run the ``fer`` package frame by frame on videos with its default settings (Haar + TFLite model).

Executed with the interpreter of a separate venv that has fer installed (never a project dependency).
All videos share one process, so TensorFlow is imported and the model loaded once; the caller times the whole
process and attributes that shared start-up to each video. Prints one JSON document with, per video: read,
warm-up and loop times, CPU, peak RSS and per-frame boxes and top emotions.
"""

from __future__ import annotations

import json
import resource
import sys
import time

import cv2
from fer.fer import FER


def read_frames(video: str) -> list:
    capture = cv2.VideoCapture(video)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def measure(detector: FER, video: str) -> dict:
    started = time.perf_counter()
    frames = read_frames(video)
    read = time.perf_counter() - started
    started = time.perf_counter()
    detector.detect_emotions(frames[0])  # warm-up, as a long-running process would be
    warm_up = time.perf_counter() - started
    per_frame = []
    cpu_start = time.process_time()
    wall_start = time.perf_counter()
    for frame in frames:
        faces = detector.detect_emotions(frame)
        per_frame.append([{"box": [int(v) for v in f["box"]],
                           "emotion": max(f["emotions"], key=f["emotions"].get)} for f in faces])
    wall = time.perf_counter() - wall_start
    cpu = time.process_time() - cpu_start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"frames": len(frames), "read_seconds": read, "warm_up_seconds": warm_up, "wall_seconds": wall,
            "cpu_seconds": cpu, "peak_rss_bytes": peak_kib * 1024, "faces": per_frame}


def main(videos: list[str]) -> None:
    detector = FER()  # defaults: Haar cascade, TFLite model, scale 1.1, min face 50
    json.dump({video: measure(detector, video) for video in videos}, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
