"""Model bundles: labels come from the bundle, so an 8-class (with contempt) model serves like the default one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emotiond.core import bundle as bundles

from support.daemon import child_env, run_cli

pytestmark = pytest.mark.model  # runs a neural network in the test process: make check leaves it out


@pytest.fixture(scope="module")
def eight_class_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small untrained CNN with eight outputs, exported through the one bundle writer."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((48, 48, 1))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(len(bundles.FER_PLUS_LABELS), activation="softmax")(x)
    path = tmp_path_factory.mktemp("models") / "ferplus-tiny"
    bundles.save(keras.Model(inputs, outputs), path, name="ferplus-tiny", labels=bundles.FER_PLUS_LABELS,
                 preprocessing=bundles.PreprocessingSpec(color="gray", crop=bundles.CropSpec(margin_ratio=0.1)),
                 provenance={"source": "test"})
    return path


def test_eight_class_bundle_serves_with_its_labels(start_daemon, events, videos, eight_class_bundle):
    daemon = start_daemon("--source", f"tv={videos['one_face']}", "--model", str(eight_class_bundle), workers=1)
    reader = events(daemon, "--until-eos", "--timeout", "120")
    assert daemon.process.wait(120) == 0, daemon.log()[-2000:]
    results = reader.wait(30)
    assert len(results) == 60 and {r["model"] for r in results} == {"ferplus-tiny"}
    faces = [f for r in results for f in r["faces"]]
    assert faces and all(list(f["scores"]) == list(bundles.FER_PLUS_LABELS) for f in faces)
    assert "contempt" in faces[0]["scores"]


def test_models_info_and_list(tmp_path, eight_class_bundle):
    env = child_env(tmp_path / "rt", EMOTIOND_MODELS__DIR=str(eight_class_bundle.parent))
    info = run_cli("models", "info", "ferplus-tiny", env=env)
    assert info.returncode == 0, info.stderr
    summary = json.loads(info.stdout)
    assert summary["labels"] == list(bundles.FER_PLUS_LABELS)
    assert summary["input"]["height"] == 48 and set(summary["files"]) == {"model.keras", "model.tflite"}
    listing = run_cli("models", "list", env=env)
    assert "ferplus-tiny\t8 labels" in listing.stdout


@pytest.mark.parametrize(("change", "message"), [
    (lambda spec: spec.update(labels=["a", "a"]), "labels must be distinct"),
    (lambda spec: spec.update(format_version=2), "format_version"),
    (lambda spec: spec["files"].pop("model.keras"), "files must list model.keras"),
    (lambda spec: spec.update(unexpected=1), "unexpected"),
])
def test_malformed_bundle_json_is_a_clear_error(tmp_path, eight_class_bundle, change, message):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(eight_class_bundle, broken)
    spec = json.loads((broken / "bundle.json").read_text())
    change(spec)
    (broken / "bundle.json").write_text(json.dumps(spec))
    with pytest.raises(bundles.BundleError, match=message):
        bundles.load(broken)


def test_tf_function_backend_agrees_with_litert(start_daemon, events, videos, default_model):
    """The two classifier backends run the same weights: same top emotion on every face."""
    by_backend = {}
    for backend in ("tf", "litert"):
        daemon = start_daemon("--source", f"tv={videos['one_face']}", "--backend", backend, workers=1)
        reader = events(daemon, "--until-eos", "--timeout", "120")
        assert daemon.process.wait(150) == 0, daemon.log()[-2000:]
        by_backend[backend] = {r["seq"]: r for r in reader.wait(30)}
    assert len(by_backend["tf"]) == len(by_backend["litert"]) == 60
    compared = 0
    for seq, tf_result in by_backend["tf"].items():
        for tf_face, lite_face in zip(tf_result["faces"], by_backend["litert"][seq]["faces"], strict=False):
            if tf_face["box"] == lite_face["box"]:
                compared += 1
                assert tf_face["emotion"] == lite_face["emotion"]
                assert abs(tf_face["confidence"] - lite_face["confidence"]) < 0.01
    assert compared >= 50
