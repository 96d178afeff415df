"""Turn a training run (or an existing bundle) into deployable artefacts.

The bundle is always written through core.bundle.save, the format the daemon's workers load. Extra
exports are for other runtimes: float and int8 TFLite (int8 calibrated on real images so activation
ranges are measured, not guessed) and a SavedModel for TF Serving.
"""

from __future__ import annotations

import logging
import platform
from pathlib import Path
from typing import Any

import numpy as np

from emotiond.core import bundle as bundle_format
from emotiond.core.bundle import CropSpec, PreprocessingSpec
from emotiond.training.errors import TrainingError
from emotiond.training.runs import BEST, HISTORY_FILE, read_run_file

log = logging.getLogger(__name__)


def export_run(run_dir: Path, out: Path, model: Any = None, with_tflite: bool = True,
               checkpoint: str = "final") -> bundle_format.Bundle:
    """Write the run's model as a bundle, with labels, preprocessing, provenance and metrics from run.json."""
    import keras
    import tensorflow as tf

    info = read_run_file(run_dir)
    if not info.get("labels"):
        raise TrainingError(f"{run_dir}: not a training run folder (no run.json with labels)")
    if model is None:
        source = run_dir / ("final.keras" if checkpoint == "final" else BEST)
        if not source.is_file():
            raise TrainingError(f"{source}: checkpoint not found")
        model = keras.models.load_model(source, compile=False)
    history = _read_history(run_dir / HISTORY_FILE)
    preprocessing = PreprocessingSpec(color="gray" if info["color"] == "gray" else "rgb",
                                      crop=CropSpec(square=True, margin_ratio=float(info.get("crop_margin_ratio", 0))),
                                      in_model=info.get("in_model", ""))
    provenance = {"arch": info.get("arch"), "dataset": info.get("dataset", {}).get("source"),
                  "counts": info.get("dataset", {}).get("counts"), "seed": info.get("seed"),
                  "run_dir": str(run_dir.resolve()), "tensorflow": tf.__version__, "keras": keras.__version__,
                  "python": platform.python_version(), "history": history}
    metrics = {k: v for k, v in (info.get("metrics") or {}).items() if isinstance(v, int | float)}
    bundle = bundle_format.save(model, out, name=info["name"], labels=info["labels"], preprocessing=preprocessing,
                                provenance=provenance, metrics=metrics, with_tflite=with_tflite)
    log.info("wrote bundle %s (%s)", out, ", ".join(bundle.spec.files))
    return bundle


def _read_history(path: Path) -> dict[str, list[float]]:
    """The CSVLogger file as column lists, so evaluation can redraw the curves from the bundle alone."""
    import csv

    if not path.is_file():
        return {}
    columns: dict[str, list[float]] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            for key, value in row.items():
                try:
                    columns.setdefault(key, []).append(float(value))
                except (TypeError, ValueError):
                    continue
    return columns


def export_saved_model(model: Any, out: Path) -> Path:
    """A TF SavedModel with a serving_default signature, as TF Serving loads it (out/<version>/ is up to you)."""
    model.export(str(out), format="tf_saved_model", verbose=False)
    return out


def calibration_images(path: Path, labels: tuple[str, ...], image_size: int, channels: int,
                       limit: int = 200) -> np.ndarray:
    """Decode up to ``limit`` images (train split, else any) from a dataset for int8 calibration."""
    from emotiond.training.data import decode_split, load_dataset

    data = load_dataset(path, list(labels), val_fraction=0.0, require_train=False)
    split = data.splits.get("train") or next(iter(data.splits.values()))
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(split))[:limit]
    ds = decode_split(split.subset(idx), image_size, channels).batch(64)
    return np.concatenate([x.numpy() for x, _ in ds], axis=0)


def run_tflite(path: Path, images: np.ndarray) -> np.ndarray:
    """Probabilities from a TFLite file, one image at a time (used to check exports agree with Keras)."""
    from emotiond.workers.litert import LiteRTModel

    model = LiteRTModel(path)
    return np.concatenate([model(image[None, ...]) for image in images.astype(np.float32)])
