"""Every registered architecture on the synthetic faces: parameters, input sizes, time per training epoch and
inference time per batch of faces, all in one run on this machine.

Each model is built as ``emotiond train`` builds it (grey 48 px faces, random init, no XLA), trained a few
warm-up steps so tracing is not timed, then for one full epoch of the synthetic set (every layer trainable, and
for transfer models also with the base frozen, their first stage). Inference is timed with ``tf.function``
(the daemon's tf backend) and, with ``--litert``, with the exported model.tflite in LiteRT (the default backend)
for the models that convert in reasonable time. Usage::

    .venv/bin/python benchmarks/bench_architectures.py [--images-per-class 300] [--size 48] [--arch vit_small ...]
        [--litert]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

FACE_BATCH = 8


def _median_ms(call: Any, batch: np.ndarray, repeats: int = 15) -> float:
    call(batch)
    times = []
    for _ in range(repeats):
        started = time.monotonic()
        call(batch)
        times.append((time.monotonic() - started) * 1000)
    return statistics.median(times)


def measure(arch: str, data: Any, size: int, batch_size: int, litert: bool) -> dict[str, Any]:
    import keras
    import tensorflow as tf

    from emotiond.training.architectures import BASE_LAYER, REGISTRY, build_model
    from emotiond.training.config import load_config
    from emotiond.training.data import make_pipeline, steps_per_epoch
    from emotiond.training.train import compile_model

    spec = REGISTRY[arch]
    cfg = load_config(None, [{"data": {"image_size": size, "color": "gray"}, "model": {"arch": arch},
                              "train": {"batch_size": batch_size, "jit_compile": False, "verbose": 0}}])
    train_split = data.splits["train"]
    steps = steps_per_epoch(len(train_split), batch_size)
    keras.backend.clear_session()
    model = build_model(arch, size, 1, len(data.labels), cfg.model)
    row: dict[str, Any] = {"arch": arch, "params": model.count_params(), "input": f"{size}x{size}x1"}
    base_side = model.get_layer("upsample").output.shape[1] if "upsample" in [lyr.name for lyr in model.layers] \
        else size
    row["base_input"] = f"{base_side}x{base_side}x3" if spec.transfer else ""
    ds = make_pipeline(train_split, image_size=size, channels=1, num_classes=len(data.labels),
                       batch_size=batch_size, training=True, seed=0)

    def epoch_seconds() -> float:
        compile_model(model, cfg, cfg.train.learning_rate, steps)
        model.fit(ds, steps_per_epoch=3, epochs=1, verbose=0)  # trace and warm up
        started = time.monotonic()
        model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
        return time.monotonic() - started

    row["epoch_s"] = epoch_seconds()
    row["frozen_epoch_s"] = None
    if spec.transfer:
        model.get_layer(BASE_LAYER).trainable = False
        row["frozen_epoch_s"] = epoch_seconds()
    faces = np.random.default_rng(0).uniform(0, 255, (FACE_BATCH, size, size, 1)).astype(np.float32)
    call = tf.function(lambda x: model(x, training=False))
    row["tf_ms_batch"] = _median_ms(lambda x: call(x).numpy(), faces)
    row["tf_ms_face"] = _median_ms(lambda x: call(x).numpy(), faces[:1])
    row["litert_ms_batch"] = row["litert_ms_face"] = None
    if litert:
        from emotiond.core.bundle import export_tflite
        from emotiond.workers.litert import LiteRTModel

        with tempfile.TemporaryDirectory() as tmp:
            path = export_tflite(model, Path(tmp) / "model.tflite")
            runner = LiteRTModel(path)
            row["litert_ms_batch"] = _median_ms(runner, faces)
            row["litert_ms_face"] = _median_ms(runner, faces[:1])
    logging.getLogger(__name__).warning("%s", row)
    return row


def _fmt(value: Any, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images-per-class", type=int, default=300)
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--arch", action="append", help="architectures to measure (default: all)")
    parser.add_argument("--litert", action="store_true", help="also export model.tflite and time LiteRT")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from emotiond.core.bundle import FER2013_LABELS
    from emotiond.training.architectures import REGISTRY
    from emotiond.training.data import load_dataset
    from emotiond.training.synth import generate

    archs = args.arch or list(REGISTRY)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "faces"
        generate(root, {"train": args.images_per_class}, size=args.size, labels=FER2013_LABELS, seed=0)
        data = load_dataset(root, "auto", val_fraction=0.0)
        rows = [measure(arch, data, args.size, args.batch_size, args.litert) for arch in archs]
    print(f"{len(data.splits['train'])} synthetic faces {args.size}x{args.size} grey, batch {args.batch_size}, "
          f"{os.cpu_count()} cores, load average {load:.1f} at start and {os.getloadavg()[0]:.1f} at the end, "
          f"no XLA; inference on {FACE_BATCH} faces and on 1\n")
    print("| architecture | parameters | input | base input | epoch s (all layers) | epoch s (base frozen) | "
          f"tf ms / {FACE_BATCH} faces | tf ms / face | LiteRT ms / {FACE_BATCH} faces | LiteRT ms / face |")
    print("|---|---:|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['arch']} | {r['params']:,} | {r['input']} | {r['base_input'] or '-'} | {_fmt(r['epoch_s'])} | "
              f"{_fmt(r['frozen_epoch_s'])} | {_fmt(r['tf_ms_batch'])} | {_fmt(r['tf_ms_face'])} | "
              f"{_fmt(r['litert_ms_batch'])} | {_fmt(r['litert_ms_face'])} |")


if __name__ == "__main__":
    main()
