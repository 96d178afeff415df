"""The ``fer`` package as the benchmark's baseline: its own venv, and one timed run per video.

fer is never a project dependency: it lives in a venv cached under ``~/.cache/emotiond/bench/fer-venv``
(``pip install --no-deps fer``; the modules fer imports come from our venv through a .pth file).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from importlib.resources import files
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
FER_VERSION = "25.10.3"
FER_VENV = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "emotiond" / "bench" / "fer-venv"
FER_TIMEOUT = 900.0


class FerError(RuntimeError):
    """The baseline could not be installed or run."""


def fer_python() -> Path:
    """The fer venv's interpreter, created on first use."""
    python = FER_VENV / "bin" / "python"
    if (FER_VENV / "lib").exists() and subprocess.run([python, "-c", "import fer.fer"],
                                                      capture_output=True).returncode == 0:
        return python
    log.info("creating the fer %s venv in %s", FER_VERSION, FER_VENV)
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", "--clear", FER_VENV], check=True)
    site = next((FER_VENV / "lib").glob("python*/site-packages"))
    ours = [p for p in sys.path if p.endswith("site-packages")]
    (site / "emotiond_deps.pth").write_text("\n".join(ours) + "\n")
    done = subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", f"fer=={FER_VERSION}"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise FerError(f"could not install fer {FER_VERSION} into {FER_VENV}: {done.stderr.strip()[-1000:]}")
    log.info("fer venv ready in %.1f s", time.monotonic() - started)
    return python


def run_fer(python: Path, videos: list[Path]) -> dict[Path, dict[str, Any]]:
    """fer frame by frame on each video, in one process; steady figures from the baseline script, wall figures
    around it.

    ``wall_seconds_with_startup`` of a video is the process's shared start-up (interpreter, TensorFlow import,
    model load: the whole process minus every video's own work) plus that video's read, warm-up and loop: what a
    process of its own would have taken, the counterpart of emotiond's daemon start to last event.
    """
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    started = time.monotonic()
    done = subprocess.run([python, str(files(__package__) / "fer_baseline.py"), *map(str, videos)],
                          capture_output=True, text=True, env=env, check=False, timeout=FER_TIMEOUT)
    total = time.monotonic() - started
    if done.returncode != 0:
        raise FerError(f"fer baseline failed (exit {done.returncode}): {done.stderr[-2000:]}")
    by_video = json.loads(done.stdout)
    own = {video: d["read_seconds"] + d["warm_up_seconds"] + d["wall_seconds"] for video, d in by_video.items()}
    shared = max(0.0, total - sum(own.values()))
    out = {}
    for video in videos:
        data = by_video[str(video)]
        data["fps"] = data["frames"] / data["wall_seconds"]
        data["startup_seconds"] = shared
        data["wall_seconds_with_startup"] = shared + own[str(video)]
        data["cpu_per_frame_ms"] = data["cpu_seconds"] / data["frames"] * 1000
        out[video] = data
    return out
