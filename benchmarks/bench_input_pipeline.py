"""Input-pipeline throughput: our tf.data pipeline against Keras' ImageDataGenerator.flow_from_directory.

Both read the same folder of PNGs on the same machine in the same run, shuffle, and produce float batches of the
same shape with one-hot labels, first with no augmentation, then with the same augmentations: flip, rotation,
shift, zoom, brightness and contrast, Gaussian noise, and CutMix or MixUp on half the batches. The
ImageDataGenerator side does what it can itself (flip, rotation, shift, zoom, reflect fill), brightness,
contrast and noise in its ``preprocessing_function`` with the same formulas in NumPy, and CutMix/MixUp on each
batch in NumPy, as training scripts built on it do. Timing covers building the pipeline (for tf.data: decoding
into the cache and tracing its graph) and every epoch; TensorFlow's own one-off start-up is done before the
clock starts. Each round runs every pipeline once, interleaved, and the medians over rounds are reported with
their range, plus CPU time per 100 images (steadier than wall time on a shared machine). Usage::

    .venv/bin/python benchmarks/bench_input_pipeline.py [--images-per-class 300] [--size 48] [--epochs 3] \
        [--repeats 3]
"""

from __future__ import annotations

import argparse
import functools
import logging
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from emotiond.training.config import AugmentConfig

AUGMENT = AugmentConfig(rotation=10.0, flip=True, translation=0.1, zoom=0.1, brightness=0.1, contrast=0.1,
                        noise_stddev=3.0, cutmix_alpha=1.0, mixup_alpha=0.2, mix_probability=0.5)


Timing = tuple[float, float, int]  # wall seconds, CPU seconds of this process, images


def time_tf_data(root: Path, size: int, batch: int, epochs: int, cache: bool,
                 augment: AugmentConfig | None) -> Timing:
    from emotiond.training.data import load_dataset, make_pipeline, steps_per_epoch

    data = load_dataset(root, "auto", val_fraction=0.0)  # the up-front file check is not timed
    split = data.splits["train"]
    count = 0
    start, cpu = time.monotonic(), time.process_time()
    batches = iter(make_pipeline(split, image_size=size, channels=1, num_classes=len(data.labels),
                                 batch_size=batch, training=True, cache=cache, augment=augment))
    for _ in range(epochs * steps_per_epoch(len(split), batch)):
        x, _y = next(batches)
        count += int(x.shape[0])
    return time.monotonic() - start, time.process_time() - cpu, count


def _numpy_pixel_augment(cfg: AugmentConfig, rng: np.random.Generator) -> Callable[[np.ndarray], np.ndarray]:
    """Contrast, brightness and noise on one image, as training.augment does them on a batch."""

    def augment(x: np.ndarray) -> np.ndarray:
        gain = rng.uniform(1.0 - cfg.contrast, 1.0 + cfg.contrast)
        shift = rng.uniform(-cfg.brightness, cfg.brightness) * 255.0
        x = (x - x.mean()) * gain + x.mean() + shift
        x = x + rng.normal(0.0, cfg.noise_stddev, x.shape)
        return np.clip(x, 0.0, 255.0)

    return augment


def _numpy_mix(x: np.ndarray, y: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> tuple[Any, Any]:
    """CutMix or MixUp on a share of batches, with a partner from the same batch, as training.augment does."""
    if rng.random() >= cfg.mix_probability:
        return x, y
    perm = rng.permutation(len(x))
    if rng.random() < 0.5:
        lam = rng.beta(cfg.mixup_alpha, cfg.mixup_alpha)
        return lam * x + (1 - lam) * x[perm], lam * y + (1 - lam) * y[perm]
    lam = rng.beta(cfg.cutmix_alpha, cfg.cutmix_alpha)
    h, w = x.shape[1:3]
    cut = math.sqrt(1.0 - lam)
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    y0, y1 = int(np.clip(cy - cut * h / 2, 0, h)), int(np.clip(cy + cut * h / 2, 0, h))
    x0, x1 = int(np.clip(cx - cut * w / 2, 0, w)), int(np.clip(cx + cut * w / 2, 0, w))
    mixed = x.copy()
    mixed[:, y0:y1, x0:x1] = x[perm, y0:y1, x0:x1]
    pasted = (y1 - y0) * (x1 - x0) / (h * w)
    return mixed, (1 - pasted) * y + pasted * y[perm]


def time_image_data_generator(root: Path, size: int, batch: int, epochs: int,
                              augment: AugmentConfig | None) -> Timing:
    from tensorflow.keras.preprocessing.image import ImageDataGenerator

    rng = np.random.default_rng(0)
    options: dict[str, Any] = {}
    if augment is not None:
        options = {"rotation_range": augment.rotation, "width_shift_range": augment.translation,
                   "height_shift_range": augment.translation, "zoom_range": augment.zoom,
                   "horizontal_flip": augment.flip, "fill_mode": "reflect",
                   "preprocessing_function": _numpy_pixel_augment(augment, rng)}
    flow = ImageDataGenerator(**options).flow_from_directory(
        str(root / "train"), target_size=(size, size), color_mode="grayscale", batch_size=batch,
        class_mode="categorical", shuffle=True, seed=0)
    count = 0
    start, cpu = time.monotonic(), time.process_time()
    for _ in range(epochs):
        for _step in range(math.ceil(flow.samples / batch)):
            x, y = next(flow)
            if augment is not None:
                x, y = _numpy_mix(x, y, augment, rng)
            count += x.shape[0]
    return time.monotonic() - start, time.process_time() - cpu, count


def warm_up_tensorflow() -> None:
    """TensorFlow's one-off start-up (runtime, tf.function machinery), on a pipeline unrelated to either side."""
    import tensorflow as tf

    for _ in tf.data.Dataset.range(8).batch(4).map(lambda v: tf.cast(v, tf.float32) * 2.0):
        pass


PIPELINES: dict[str, Callable[..., Timing]] = {
    "ImageDataGenerator.flow_from_directory": time_image_data_generator,
    "tf.data (decode every epoch)": functools.partial(time_tf_data, cache=False),
    "tf.data (decoded cache)": functools.partial(time_tf_data, cache=True),
}
BASELINE, OURS = "ImageDataGenerator.flow_from_directory", "tf.data (decoded cache)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images-per-class", type=int, default=300)
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds; each round runs every pipeline once, interleaved, and medians are reported, "
                             "so a burst of load on a shared machine does not land on one side only")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from emotiond.core.bundle import FER2013_LABELS
    from emotiond.training.synth import generate

    sides = {"no augmentation": None, "augmentation": AUGMENT}
    runs: dict[tuple[str, str], list[Timing]] = {(side, name): [] for side in sides for name in PIPELINES}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "faces"
        generate(root, {"train": args.images_per_class}, size=args.size, labels=FER2013_LABELS, seed=0)
        warm_up_tensorflow()
        for _round in range(args.repeats):
            for side, augment in sides.items():
                for name, run in PIPELINES.items():
                    runs[side, name].append(run(root, args.size, args.batch_size, args.epochs, augment=augment))
    print(f"{len(FER2013_LABELS) * args.images_per_class} PNGs {args.size}x{args.size}, batch {args.batch_size}, "
          f"{args.epochs} epochs, {os.cpu_count()} cores, median of {args.repeats} interleaved rounds "
          f"(min..max images/s)\n")
    summary: dict[str, tuple[float, list[float]]] = {}
    print(f"{'augmentations':<16} {'pipeline':<40} {'images':>7} {'seconds':>8} {'images/s':>9} {'range':>13} "
          f"{'CPU ms/100':>10} {'vs IDG':>7}")
    for side in sides:
        medians = {name: statistics.median(count / wall for wall, _cpu, count in runs[side, name])
                   for name in PIPELINES}
        for name in PIPELINES:
            timings = runs[side, name]
            rates = [count / wall for wall, _cpu, count in timings]
            cpu_ms = statistics.median(cpu / count * 100 * 1000 for _wall, cpu, count in timings)
            wall = statistics.median(wall for wall, _cpu, _count in timings)
            print(f"{side:<16} {name:<40} {timings[0][2]:>7} {wall:>8.2f} {medians[name]:>9.0f} "
                  f"{f'{min(rates):.0f}..{max(rates):.0f}':>13} {cpu_ms:>10.1f} "
                  f"{medians[name] / medians[BASELINE]:>6.2f}x")
        summary[side] = (medians[OURS] / medians[BASELINE],
                         [(c / w) / (bc / bw) for (w, _, c), (bw, _, bc) in zip(runs[side, OURS],
                                                                              runs[side, BASELINE], strict=True)])
    print()
    for side, (ratio, per_round) in summary.items():
        print(f"{OURS} vs ImageDataGenerator, {side}: {ratio:.2f}x "
              f"(round by round: {', '.join(f'{r:.2f}x' for r in per_round)})")


if __name__ == "__main__":
    main()
