"""Shared, session-cached data and runs for the training tests (generated once, reused by every module)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest

from emotiond.core.bundle import FER2013_LABELS
from emotiond.training.config import load_config
from emotiond.training.digits import write_digits
from emotiond.training.synth import generate

SIZE = 32


@functools.cache
def synthetic_dir(base: Path) -> Path:
    """7 expressions, 150 train + 40 test faces each, 32x32 grey; val is split off automatically."""
    out = base / "synthetic"
    generate(out, {"train": 150, "test": 40}, size=SIZE, labels=FER2013_LABELS, seed=1)
    return out


@functools.cache
def tiny_dir(base: Path) -> Path:
    """A few faces per class, for runs that only need to prove the machinery works."""
    out = base / "tiny"
    generate(out, {"train": 6, "test": 3}, size=SIZE, labels=FER2013_LABELS, seed=2)
    return out


@functools.cache
def digits_dir(base: Path) -> Path:
    out = base / "digits"
    write_digits(out, size=SIZE, seed=0)
    return out


def quick_config(data_dir: Path, out: Path, arch: str, **sections: dict[str, Any]) -> Any:
    """A config for short CPU runs: no TensorBoard, quiet, the given sections merged over defaults."""
    base: dict[str, Any] = {
        "name": f"test-{arch}".replace("_", "-"), "output_dir": str(out), "seed": 7,
        "data": {"path": str(data_dir), "image_size": SIZE, "val_fraction": 0.15},
        "model": {"arch": arch},
        "train": {"epochs": 12, "batch_size": 32, "verbose": 0, "tensorboard": False},
        "export": {"with_tflite": False},
    }
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value}
    return load_config(None, [base])


@functools.cache
def trained_lenet(base: Path) -> Any:
    """The LeNet-style model trained on the synthetic faces, exported with model.tflite (reused by later tests)."""
    from emotiond.training.train import train

    cfg = quick_config(synthetic_dir(base), base / "run-lenet", "lenet",
                       data={"labels": "fer2013"},
                       model={"arch": "lenet", "lenet": {"dropout": 0.25}},
                       augment={"rotation": 8.0, "translation": 0.05, "flip": True},
                       train={"tensorboard": True},
                       export={"with_tflite": True})
    return train(cfg)


NEW_ARCHITECTURES = ("inception_v3", "efficientnet_b4", "vit_small")
# InceptionV3 and EfficientNetB4 take minutes on 2 cores (EfficientNetB4's TFLite conversion alone 78 s):
# opt-in (`make test-heavy`), with room. `make test` builds both and runs them (test_training_architectures).
_HEAVY = [pytest.mark.heavy, pytest.mark.slow, pytest.mark.timeout(1200)]
HEAVY_PARAMS = [pytest.param(arch, marks=_HEAVY) if arch != "vit_small" else arch for arch in NEW_ARCHITECTURES]
TINY_VIT = {"patches_per_side": 4, "dim": 32, "depth": 2, "heads": 2}


@functools.cache
def trained_architecture(base: Path, arch: str) -> Any:
    """One of the newer architectures trained on the tiny faces (grey, 32 px) and exported with model.tflite:
    the ViT for two epochs, the transfer models for one step with the base frozen (their fine-tuning stage is
    the same code the older transfer models test). XLA is off: compiling these graphs costs far more than the
    steps themselves."""
    from emotiond.training.train import train

    cfg = quick_config(tiny_dir(base), base / f"run-{arch}", arch,
                       data={"color": "gray", "val_fraction": 0.2},
                       model={"arch": arch, "transfer": {"frozen_epochs": 1, "fine_tune_layers": 0},
                              "vit": TINY_VIT},
                       train={"epochs": 2, "batch_size": 64, "early_stopping_patience": 0, "jit_compile": False},
                       augment={"flip": True, "rotation": 5.0, "mixup_alpha": 0.2},
                       export={"with_tflite": True})
    return train(cfg)
