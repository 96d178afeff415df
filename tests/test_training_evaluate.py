"""Evaluation reports and exports of the synthetic-expression model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emotiond.__main__ import main
from emotiond.core import bundle as bundle_format
from emotiond.training.errors import DatasetError
from emotiond.training.evaluate import load_eval_split
from emotiond.training.export import calibration_images, run_tflite

from support.training import synthetic_dir, trained_lenet

pytestmark = pytest.mark.model  # runs a neural network in the test process: make check leaves it out


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp()


def test_evaluate_writes_full_report(base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = trained_lenet(base)
    out = tmp_path / "eval"
    assert main(["evaluate", str(result.bundle_path), "--data", str(synthetic_dir(base)), "--out", str(out),
                 "--top-k", "3"]) == 0
    assert "accuracy" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["samples"] == 280
    assert metrics["accuracy"] == pytest.approx(result.metrics["test_accuracy"], abs=1e-3)
    assert metrics["top_3_accuracy"] >= metrics["accuracy"] >= 0.9
    assert 0.85 <= metrics["macro_f1"] <= 1.0 and 0.85 <= metrics["weighted_f1"] <= 1.0
    assert np.asarray(metrics["confusion_matrix"]).sum() == 280
    assert set(metrics["per_class"]) == set(result.labels)
    for png in ("confusion_matrix.png", "confusion_matrix_normalised.png", "training_curves.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    report = (out / "report.md").read_text()
    for needle in ("| accuracy |", "| top-3 accuracy |", "| macro F1 |", "| weighted F1 |", "| happy |",
                   "![Confusion matrix](confusion_matrix.png)", "![Training curves](training_curves.png)",
                   "## Per class"):
        assert needle in report, needle
    if metrics["accuracy"] < 1.0:
        assert (out / "misclassified.png").is_file() and "misclassified.png" in report


def test_evaluate_rejects_unknown_classes_and_skips_corrupt(base: Path, tmp_path: Path) -> None:
    labels = trained_lenet(base).labels
    data = tmp_path / "data"
    src = synthetic_dir(base) / "test"
    for label in ("happy", "sad"):
        (data / label).mkdir(parents=True)
        for f in sorted((src / label).iterdir())[:3]:
            (data / label / f.name).write_bytes(f.read_bytes())
    (data / "happy" / "bad.png").write_bytes(b"nope")
    split, name, notes = load_eval_split(data, labels, None)
    assert name == "train" and len(split) == 6
    assert any("bad.png" in n for n in notes) and "no images for class angry" in notes
    (data / "bored").mkdir()
    (data / "bored" / "x.png").write_bytes((src / "happy" / "happy_00000.png").read_bytes())
    with pytest.raises(DatasetError, match="class folder\\(s\\) the model does not know: bored"):
        load_eval_split(data, labels, None)


def test_export_tflite_float_int8_and_saved_model(base: Path, tmp_path: Path) -> None:
    import keras
    import tensorflow as tf

    result = trained_lenet(base)
    out = tmp_path / "exports"
    assert main(["export", str(result.run_dir), "--out", str(out / "bundle"), "--checkpoint", "best",
                 "--tflite-float", str(out / "float.tflite"), "--tflite-int8", str(out / "int8.tflite"),
                 "--saved-model", str(out / "saved_model")]) == 0
    bundle = bundle_format.load(out / "bundle")
    assert bundle.labels == result.labels and bundle.tflite_path is not None
    images = calibration_images(synthetic_dir(base), bundle.labels, 32, 1, limit=40)
    keras_probs = keras.models.load_model(bundle.keras_path, compile=False).predict(images, verbose=0)
    float_probs = run_tflite(out / "float.tflite", images)
    int8_probs = run_tflite(out / "int8.tflite", images)
    assert np.allclose(float_probs, keras_probs, atol=1e-4)
    assert (int8_probs.argmax(1) == keras_probs.argmax(1)).mean() >= 0.9
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(out / "int8.tflite"))
    dtypes = {d["dtype"] for d in interp.get_tensor_details()}
    assert np.int8 in dtypes
    assert (out / "int8.tflite").stat().st_size < (out / "float.tflite").stat().st_size / 2
    served = tf.saved_model.load(str(out / "saved_model"))
    sm_probs = served.signatures["serving_default"](tf.constant(images[:4]))
    assert np.allclose(next(iter(sm_probs.values())).numpy(), keras_probs[:4], atol=1e-4)
