"""What a first training run shows: a one-epoch run's curves draw their points, and converting a model to
TFLite keeps Keras's SavedModel summary off stdout (it belongs to the command's own output)."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np

from emotiond.training.plots import curves_png

from support.daemon import REPO

TRAIN_BLUE = (180, 119, 31)  # matplotlib's first colour, C0 (#1f77b4), in BGR


def blobs_of(image: np.ndarray, bgr: tuple[int, int, int]) -> int:
    mask = (np.abs(image.astype(int) - np.array(bgr)).sum(axis=2) < 40).astype(np.uint8)
    count, _ = cv2.connectedComponents(mask)
    return count - 1


def test_a_one_epoch_run_draws_its_points(tmp_path):
    one = curves_png({"loss": [0.9], "val_loss": [1.1], "accuracy": [0.4], "val_accuracy": [0.3]},
                     tmp_path / "one.png")
    image = cv2.imread(str(one))
    # Per panel: the legend's sample and the data point itself. A line through one point draws nothing, which
    # left only the two legend samples.
    assert blobs_of(image, TRAIN_BLUE) >= 4, blobs_of(image, TRAIN_BLUE)


def test_tflite_conversion_keeps_stdout_clean(tmp_path):
    script = f"""
import keras
from pathlib import Path
from emotiond.core.bundle import export_tflite
model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(2)])
out = export_tflite(model, Path({str(tmp_path / "m.tflite")!r}))
assert out.stat().st_size > 0
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={"TF_CPP_MIN_LOG_LEVEL": "2", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path.parent)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "m.tflite").stat().st_size > 0
    assert done.stdout == "", done.stdout[-3000:]
