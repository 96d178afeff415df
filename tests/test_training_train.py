"""Training proofs on CPU: synthetic expressions, real digits, every transfer model, resume and the CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from emotiond.__main__ import main
from emotiond.core import bundle as bundle_format
from emotiond.training.train import train

from support.training import digits_dir, quick_config, synthetic_dir, tiny_dir, trained_lenet

pytestmark = pytest.mark.model  # runs a neural network in the test process: make check leaves it out


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp()


def test_lenet_learns_synthetic_expressions(base: Path) -> None:
    result = trained_lenet(base)
    assert result.metrics["evaluated_on"] == "test"
    assert result.metrics["test_accuracy"] >= 0.90, result.metrics
    run = result.run_dir
    for name in ("checkpoints/best.keras", "checkpoints/last.keras", "history.csv", "config.toml", "final.keras"):
        assert (run / name).is_file(), name
    assert any((run / "tensorboard").rglob("events.out.tfevents.*"))
    with (run / "history.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) >= 5 and {"accuracy", "val_accuracy", "loss", "val_loss", "top_k"} <= set(rows[0])
    bundle = bundle_format.load(result.bundle_path)
    assert bundle.labels == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert bundle.spec.input.height == 32 and bundle.spec.input.channels == 1
    assert bundle.tflite_path is not None and bundle.spec.preprocessing.color == "gray"
    assert bundle.spec.metrics["test_accuracy"] == result.metrics["test_accuracy"]
    assert len(bundle.spec.provenance["history"]["val_accuracy"]) == len(rows)
    dataset = json.loads((run / "run.json").read_text())["dataset"]
    assert dataset["counts"]["val"]["happy"] == 22 and dataset["counts"]["train"]["happy"] == 128


def test_mini_xception_learns_synthetic_expressions(base: Path, tmp_path: Path) -> None:
    cfg = quick_config(synthetic_dir(base), tmp_path / "run", "mini_xception",
                       model={"arch": "mini_xception", "mini_xception": {"batchnorm_momentum": 0.9}},
                       augment={"rotation": 8.0, "translation": 0.05, "flip": True})
    result = train(cfg)
    assert result.metrics["test_accuracy"] >= 0.90, result.metrics


def test_digits_directory_pipeline_reaches_95_percent(base: Path, tmp_path: Path) -> None:
    cfg = quick_config(digits_dir(base), tmp_path / "run", "lenet",
                       model={"arch": "lenet", "lenet": {"dropout": 0.25, "dense": [256, 128]}},
                       augment={"rotation": 8.0, "translation": 0.05},
                       train={"epochs": 10, "schedule": "cosine", "optimizer": "adamw"})
    result = train(cfg)
    assert result.labels == tuple(str(d) for d in range(10))
    assert result.metrics["test_accuracy"] >= 0.95, result.metrics


# Four ImageNet bases trained in both stages: minutes of both cores each (four of the ten longest tests of a
# serial run), so they run with the heavy cases (`make test-heavy`, which CI runs).
@pytest.mark.heavy
@pytest.mark.parametrize("arch", ["vgg16", "resnet50", "efficientnet_b0", "mobilenet_v3_small"])
def test_transfer_models_train_both_stages(arch: str, base: Path, tmp_path: Path) -> None:
    cfg = quick_config(tiny_dir(base), tmp_path / "run", arch,
                       data={"color": "gray", "val_fraction": 0.2},
                       model={"arch": arch, "transfer": {"frozen_epochs": 1, "fine_tune_layers": 4,
                                                         "fine_tune_lr_factor": 0.1}},
                       train={"epochs": 1, "batch_size": 64, "early_stopping_patience": 0},
                       augment={"mixup_alpha": 0.4, "cutmix_alpha": 1.0, "color_jitter": 0.3})
    result = train(cfg)
    with (result.run_dir / "history.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["epoch"] for r in rows] == ["0", "1"]  # stage 1 (frozen) then stage 2 (fine-tuning)
    base_model = result.model.get_layer("base")
    trainable = [layer.trainable for layer in base_model.layers if layer.weights]
    assert any(trainable) and not all(trainable)
    assert not any(layer.trainable for layer in base_model.layers
                   if layer.__class__.__name__ == "BatchNormalization")
    bundle = bundle_format.load(result.bundle_path)
    assert bundle.spec.input.channels == 1 and bundle.spec.preprocessing.color == "gray"


def test_cli_train_then_resume(base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    common = ["train", "--data", str(tiny_dir(base)), "--arch", "lenet", "--out", str(run), "--image-size", "32",
              "--set", "model.lenet.filters=[8, 16]", "--set", "model.lenet.dense=[32, 16]",
              "--set", "train.verbose=0", "--set", "train.tensorboard=false", "--set", "export.with_tflite=false",
              "--set", "augment.flip=true", "--set", "train.mixed_precision=false", "--name", "resumed"]
    assert main([*common, "--epochs", "2"]) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert Path(first["bundle"]).is_dir()
    assert json.loads((run / "run.json").read_text())["state"] == {"stage": 1, "epochs_done": 2}
    assert main([*common, "--epochs", "4", "--resume"]) == 0
    state = json.loads((run / "run.json").read_text())["state"]
    assert state == {"stage": 1, "epochs_done": 4}
    with (run / "history.csv").open() as fh:
        assert [r["epoch"] for r in csv.DictReader(fh)] == ["0", "1", "2", "3"]
    assert main(["train", "--data", str(tiny_dir(base)), "--out", str(tmp_path / "fresh"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
