"""Input-pipeline throughput: our tf.data pipeline against Keras' ImageDataGenerator.flow_from_directory.

Both read the same folder of PNGs on the same machine in the same run and produce float batches of the same
shape. Prints images/s for each and the ratio. Usage::

    .venv/bin/python benchmarks/bench_input_pipeline.py [--images-per-class 300] [--size 48] [--epochs 2]
"""

from __future__ import annotations

import argparse
import logging
import math
import tempfile
import time
from pathlib import Path


def time_tf_data(root: Path, size: int, batch: int, epochs: int, cache: bool) -> tuple[float, int]:
    from emotiond.training.data import load_dataset, make_pipeline

    data = load_dataset(root, "auto", val_fraction=0.0)  # the up-front file check is not timed
    split = data.splits["train"]
    count = 0
    start = time.perf_counter()
    ds = make_pipeline(split, image_size=size, channels=1, num_classes=len(data.labels), batch_size=batch,
                       training=False, cache=cache)
    for _ in range(epochs):
        for x, _y in ds:
            count += int(x.shape[0])
    return time.perf_counter() - start, count


def time_image_data_generator(root: Path, size: int, batch: int, epochs: int) -> tuple[float, int]:
    from tensorflow.keras.preprocessing.image import ImageDataGenerator

    flow = ImageDataGenerator(rescale=1.0 / 255).flow_from_directory(
        str(root / "train"), target_size=(size, size), color_mode="grayscale", batch_size=batch,
        class_mode="categorical", shuffle=True, seed=0)
    count = 0
    start = time.perf_counter()
    for _ in range(epochs):
        for _step in range(math.ceil(flow.samples / batch)):
            x, _y = next(flow)
            count += x.shape[0]
    return time.perf_counter() - start, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images-per-class", type=int, default=300)
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from emotiond.daemon.core.bundle import FER2013_LABELS
    from emotiond.training.synth import generate

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "faces"
        generate(root, {"train": args.images_per_class}, size=args.size, labels=FER2013_LABELS, seed=0)
        rows = [
            ("ImageDataGenerator.flow_from_directory", *time_image_data_generator(
                root, args.size, args.batch_size, args.epochs)),
            ("tf.data (no cache)", *time_tf_data(root, args.size, args.batch_size, args.epochs, cache=False)),
            ("tf.data (cache)", *time_tf_data(root, args.size, args.batch_size, args.epochs, cache=True)),
        ]
    baseline = rows[0][2] / rows[0][1]
    print(f"{len(FER2013_LABELS) * args.images_per_class} PNGs {args.size}x{args.size}, batch {args.batch_size}, "
          f"{args.epochs} epochs\n")
    print(f"{'pipeline':<40} {'images':>8} {'seconds':>8} {'images/s':>10} {'vs IDG':>7}")
    for name, seconds, count in rows:
        rate = count / seconds
        print(f"{name:<40} {count:>8} {seconds:>8.2f} {rate:>10.0f} {rate / baseline:>6.2f}x")


if __name__ == "__main__":
    main()
