"""InceptionV3, EfficientNetB4 and the small Vision Transformer: they train on tiny data, take small grey faces
(upsampled inside the graph where the base needs it), load ImageNet weights from a local file, and export to a
bundle whose model.tflite agrees with the Keras model. The daemon serving them is in test_training_daemon.py."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from emotiond.core import bundle as bundle_format
from emotiond.training.architectures import REGISTRY, build_model
from emotiond.training.config import load_config
from emotiond.training.data import decode_images, load_dataset
from emotiond.training.errors import TrainingConfigError
from emotiond.training.export import run_tflite

from support.training import HEAVY_PARAMS, SIZE, TINY_VIT, tiny_dir, trained_architecture

pytestmark = pytest.mark.model  # runs a neural network in the test process: make check leaves it out


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp()


def _test_faces(base: Path) -> np.ndarray:
    data = load_dataset(tiny_dir(base), "auto", val_fraction=0.0)
    return decode_images(data.splits["test"], SIZE, 1)[:6].astype(np.float32)


@pytest.mark.parametrize("arch", HEAVY_PARAMS)
def test_trains_and_exports_a_bundle_with_matching_tflite(arch: str, base: Path) -> None:
    result = trained_architecture(base, arch)
    with (result.run_dir / "history.csv").open() as fh:
        epochs = [row["epoch"] for row in csv.DictReader(fh)]
    assert epochs == (["0", "1"] if arch == "vit_small" else ["0"])  # transfer: one step, base frozen
    if arch != "vit_small":
        assert not result.model.get_layer("base").trainable
    bundle = bundle_format.load(result.bundle_path)
    assert bundle.spec.input.height == SIZE and bundle.spec.input.channels == 1
    assert bundle.spec.preprocessing.color == "gray" and bundle.tflite_path is not None
    assert bundle.spec.provenance["arch"] == arch
    layers = {layer.name: layer for layer in result.model.layers}
    if arch == "inception_v3":  # 32 px faces are upsampled inside the graph to InceptionV3's minimum input
        assert layers["upsample"].output.shape == (None, 75, 75, 3)
    else:  # EfficientNetB4 takes 32 px as they are; the ViT has no pretrained base
        assert "upsample" not in layers
    import keras

    model = keras.models.load_model(bundle.keras_path, compile=False)  # stock layers only: no custom objects
    faces = _test_faces(base)
    expected = np.asarray(model(faces, training=False))
    served = run_tflite(bundle.tflite_path, faces)
    assert expected.shape == served.shape == (len(faces), 7)
    np.testing.assert_allclose(served, expected, atol=2e-3)
    assert np.allclose(served.sum(axis=1), 1.0, atol=1e-3)


@pytest.mark.parametrize(("arch", "upsampled"), [("inception_v3", (None, 75, 75, 3)), ("efficientnet_b4", None)])
def test_large_bases_take_small_grey_faces(arch: str, upsampled: tuple | None, base: Path) -> None:
    """What `make test` keeps of the heavy cases (trained, exported and served under `make test-heavy`): both
    bases build for 32 px grey faces, upsampling inside the graph where the base needs more, and give one score
    per emotion."""
    cfg = load_config(None, [{"model": {"arch": arch}}])
    model = build_model(arch, SIZE, 1, 7, cfg.model)
    layers = {layer.name: layer for layer in model.layers}
    assert model.input_shape == (None, SIZE, SIZE, 1)
    assert (layers["upsample"].output.shape if "upsample" in layers else None) == upsampled
    scores = np.asarray(model(_test_faces(base), training=False))
    assert scores.shape == (6, 7) and np.allclose(scores.sum(axis=1), 1.0, atol=1e-4)


@pytest.mark.slow
def test_imagenet_weights_come_from_a_local_file(tmp_path: Path) -> None:
    """weights_path is read from disk (here: a file written from another InceptionV3), never downloaded; a
    larger base input than the minimum can be asked for."""
    from keras import applications

    source = applications.InceptionV3(include_top=False, weights=None, input_shape=(75, 75, 3))
    weights = tmp_path / "inception_v3_notop.weights.h5"
    source.save_weights(weights)
    transfer = {"weights_path": str(weights), "base_input_size": 99}
    cfg = load_config(None, [{"model": {"arch": "inception_v3", "transfer": transfer}}])
    model = build_model("inception_v3", 48, 1, 7, cfg.model)
    assert model.input_shape == (None, 48, 48, 1)
    assert model.get_layer("upsample").output.shape == (None, 99, 99, 3)
    loaded = [layer for layer in model.get_layer("base").layers if layer.weights]
    original = [layer for layer in source.layers if layer.weights]
    for mine, theirs in ((loaded[0], original[0]), (loaded[-1], original[-1])):
        np.testing.assert_array_equal(mine.get_weights()[0], theirs.get_weights()[0])


def test_vit_size_is_checked_and_its_parameters_follow_the_config() -> None:
    cfg = load_config(None, [{"model": {"arch": "vit_small", "vit": TINY_VIT}}]).model
    model = build_model("vit_small", 32, 1, 7, cfg)
    dim, depth, tokens, hidden = TINY_VIT["dim"], TINY_VIT["depth"], 16, int(TINY_VIT["dim"] * 2.0)
    patch = (32 // 4) ** 2
    per_block = 4 * (dim * dim + dim) + 2 * 2 * dim + (dim * hidden + hidden) + (hidden * dim + dim)
    expected = (patch * dim + dim) + depth * per_block + (9 * dim + dim) + 2 * dim + (dim * 7 + 7)
    assert model.count_params() == expected
    assert model.get_layer("tokens").output.shape == (None, tokens, dim)
    with pytest.raises(TrainingConfigError, match=r"not a multiple of model\.vit\.patches_per_side"):
        build_model("vit_small", 34, 1, 7, cfg)
    default = load_config(None, [{"model": {"arch": "vit_small"}}]).model
    assert REGISTRY["vit_small"].default_color == "gray"
    assert 0.5e6 < build_model("vit_small", 48, 1, 7, default).count_params() < 1.5e6
