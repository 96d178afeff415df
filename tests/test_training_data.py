"""Datasets, checks, configs and augmentation: everything before a model is built."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emotiond.__main__ import main
from emotiond.training.check import check_dataset
from emotiond.training.config import load_config, parse_override
from emotiond.training.data import class_weights_from_counts, load_dataset, make_pipeline, stratified_split
from emotiond.training.errors import DatasetError, TrainingConfigError
from emotiond.training.synth import generate

pytestmark = pytest.mark.model  # runs a neural network in the test process: make check leaves it out

LABELS3 = ["happy", "sad", "surprise"]


@pytest.fixture
def small(tmp_path: Path) -> Path:
    generate(tmp_path / "ds", {"train": 8, "test": 3}, size=24, labels=LABELS3, seed=3)
    return tmp_path / "ds"


def test_check_counts_duplicates_corrupt_and_sizes(small: Path, capsys: pytest.CaptureFixture[str]) -> None:
    leaked = small / "train" / "happy" / "happy_00000.png"
    (small / "test" / "happy" / "copy_of_train.png").write_bytes(leaked.read_bytes())
    (small / "train" / "sad" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    (small / "train" / "sad" / "empty.jpg").write_bytes(b"")
    from PIL import Image

    Image.new("RGB", (40, 30), (200, 10, 10)).save(small / "train" / "surprise" / "big.png")
    report = check_dataset(small)
    assert report["counts"]["train"] == {"happy": 8, "sad": 8, "surprise": 9}
    assert report["counts"]["test"]["happy"] == 4
    assert sorted(b["path"] for b in report["bad_files"]) == ["train/sad/broken.png", "train/sad/empty.jpg"]
    assert [sorted(g) for g in report["duplicates_across_splits"]] == [
        ["test:test/happy/copy_of_train.png", "train:train/happy/happy_00000.png"]]
    assert report["sizes"] == {"24x24": 34, "40x30": 1}
    assert report["modes"] == {"L": 34, "RGB": 1}
    assert main(["datasets", "check", str(small)]) == 0
    text = capsys.readouterr().out
    assert "broken.png" in text and "duplicates across splits (1 groups)" in text
    assert main(["datasets", "check", str(small), "--strict", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["totals"] == {"train": 25, "test": 10}


def test_corrupt_files_are_skipped_by_loading(small: Path) -> None:
    (small / "train" / "sad" / "broken.jpg").write_bytes(b"\xff\xd8\xff" + b"\x00" * 50)
    (small / "train" / "sad" / "notes.webp").write_bytes(b"RIFF0000WEBPVP8 ")
    data = load_dataset(small, "auto", val_fraction=0.25, seed=0)
    assert {b.path.name for b in data.bad} == {"broken.jpg", "notes.webp"}
    assert data.labels == ("happy", "sad", "surprise")
    assert len(data.splits["train"]) + len(data.splits["val"]) == 24
    assert data.splits["val"].counts(3) == [2, 2, 2]


def test_empty_class_and_mismatched_labels_are_clear_errors(small: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(DatasetError, match=r"missing class folder\(s\): angry.*unexpected class folder\(s\): "
                                           r"happy, sad, surprise"):
        load_dataset(small, ["angry", "neutral"])
    (small / "test" / "extra").mkdir()
    with pytest.raises(DatasetError, match=r"test: label set mismatch; unexpected class folder\(s\): extra"):
        load_dataset(small, "auto")
    (small / "test" / "extra").rmdir()
    for f in (small / "train" / "sad").iterdir():
        f.write_bytes(b"not an image")
    with pytest.raises(DatasetError, match="no usable training images: sad"):
        load_dataset(small, "auto")
    assert main(["train", "--data", str(small), "--out", str(small.parent / "run")]) == 2
    assert "no usable training images: sad" in capsys.readouterr().err


def test_fer_csv_splits_and_bad_rows(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = ["emotion,pixels,Usage"]
    for i in range(21):
        usage = ("Training", "PublicTest", "PrivateTest")[i % 3]
        rows.append(f"{i % 7},{' '.join(map(str, rng.integers(0, 256, 48 * 48)))},{usage}")
    rows.append(f"3,{' '.join(['1'] * 100)},Training")  # wrong size
    rows.append(f"9,{' '.join(['1'] * 2304)},Training")  # class out of range
    rows.append("x,1 2 3,Training")
    csv = tmp_path / "fer2013.csv"
    csv.write_text("\n".join(rows) + "\n")
    data = load_dataset(csv, "fer2013")
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 7, "val": 7, "test": 7}
    assert [b.reason for b in data.bad] == ["image is 10x10, expected 48x48 like the first row",
                                            "emotion 9 outside 0..6", "emotion or pixels is not numeric"]
    report = check_dataset(csv)
    assert report["format"] == "fer2013-csv" and report["totals"] == {"train": 7, "val": 7, "test": 7}
    ds = make_pipeline(data.splits["train"], image_size=32, channels=3, num_classes=7, batch_size=4,
                       training=False)
    x, y = next(iter(ds))
    assert x.shape == (4, 32, 32, 3) and y.shape == (4, 7)
    with pytest.raises(DatasetError, match="header must have 'emotion' and 'pixels'"):
        (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
        load_dataset(tmp_path / "bad.csv", "fer2013")


def test_wrong_image_sizes_and_colours_are_resized_and_converted(small: Path) -> None:
    from PIL import Image

    Image.new("RGB", (100, 60), (0, 255, 0)).save(small / "train" / "happy" / "wide_rgb.png")
    data = load_dataset(small, "auto", val_fraction=0.0)
    ds = make_pipeline(data.splits["train"], image_size=20, channels=1, num_classes=3, batch_size=64, training=False)
    x, _ = next(iter(ds))
    assert x.shape == (25, 20, 20, 1)
    assert float(x.numpy().max()) <= 255.0 and float(x.numpy().min()) >= 0.0


def test_stratified_split_is_seeded_and_per_class() -> None:
    labels = np.array([0] * 50 + [1] * 10 + [2] * 2)
    keep, held = stratified_split(labels, 0.2, seed=5)
    assert np.bincount(labels[held]).tolist() == [10, 2, 1]
    assert len(np.intersect1d(keep, held)) == 0 and len(keep) + len(held) == len(labels)
    assert np.array_equal(held, stratified_split(labels, 0.2, seed=5)[1])
    assert not np.array_equal(held, stratified_split(labels, 0.2, seed=6)[1])


def test_class_weights_inverse_frequency() -> None:
    w = class_weights_from_counts([100, 50, 25, 25])
    assert np.allclose(w, [0.5, 1.0, 2.0, 2.0])


def test_config_rejects_unknown_keys_and_bad_values(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nlearning_rte = 0.1\nepochs = 0\n[model]\narch = 'alexnet'\n")
    with pytest.raises(TrainingConfigError) as err:
        load_config(bad)
    message = str(err.value)
    assert "train.learning_rte: unknown key" in message
    assert "train.epochs: Input should be greater than or equal to 1" in message
    assert "unknown architecture 'alexnet'" in message
    with pytest.raises(TrainingConfigError, match="no such config file or preset"):
        load_config("does-not-exist")
    assert parse_override("augment.cutmix_alpha=1.0") == {"augment": {"cutmix_alpha": 1.0}}
    assert parse_override("data.labels=['a', 'b']") == {"data": {"labels": ["a", "b"]}}
    cfg = load_config("seeds-lenet", [parse_override("train.epochs=3")])
    assert cfg.train.epochs == 3 and cfg.model.lenet.dense == [1024, 128] and cfg.model.lenet.dropout == 0.5


def test_cli_usage_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--config", "seeds-lenet", "--set", "train.nope=1"]) == 2
    assert "train.nope: unknown key" in capsys.readouterr().err
    assert main(["datasets", "check", str(tmp_path / "missing")]) == 2
    assert "no such dataset folder" in capsys.readouterr().err
    assert main(["export", str(tmp_path)]) == 2
    assert "neither a training run folder" in capsys.readouterr().err


def _batch(n: int = 8, size: int = 16, classes: int = 4) -> tuple[object, object]:
    import tensorflow as tf

    x = tf.constant(np.arange(n, dtype=np.float32)[:, None, None, None] * np.ones((1, size, size, 1), np.float32) * 30)
    y = tf.one_hot(np.arange(n) % classes, classes)
    return x, y


def test_augmentations_change_pixels_deterministically() -> None:
    from emotiond.training.augment import build_batch_augmenter
    from emotiond.training.config import AugmentConfig

    cfg = AugmentConfig(rotation=20, flip=True, contrast=0.3, brightness=0.2, translation=0.1, zoom=0.2,
                        noise_stddev=5.0, color_jitter=0.5)
    x, y = _batch()
    augment = build_batch_augmenter(cfg, seed=1)
    assert augment is not None
    a1, ya = augment(0, (x, y))
    a2, _ = augment(0, (x, y))
    a3, _ = augment(1, (x, y))
    assert np.array_equal(a1.numpy(), a2.numpy())
    assert not np.allclose(a1.numpy(), a3.numpy())
    assert not np.allclose(a1.numpy(), x.numpy())
    assert a1.numpy().min() >= 0 and a1.numpy().max() <= 255
    assert np.array_equal(ya.numpy(), y.numpy())
    assert build_batch_augmenter(AugmentConfig(), seed=1) is None


def test_cutmix_and_mixup_mix_labels_by_area_and_weight() -> None:
    from emotiond.training.augment import cutmix, mixup

    x, y = _batch()
    mx, my = cutmix(x, y, 1.0, 3, 0)
    sums = my.numpy().sum(axis=1)
    assert np.allclose(sums, 1.0, atol=1e-5)
    # The share of pixels that changed equals the label weight given to the partner class.
    changed = (mx.numpy() != x.numpy()).reshape(8, -1).mean(axis=1)
    own = (my.numpy() * y.numpy()).sum(axis=1)
    moved = changed > 0
    assert moved.any()
    assert np.allclose(1 - own[moved], changed[moved], atol=1e-5)
    mixed, uy = mixup(x, y, 0.4, 3, 0)
    assert not np.allclose(mixed.numpy(), x.numpy())
    assert np.allclose(uy.numpy().sum(axis=1), 1.0, atol=1e-5)
    assert (uy.numpy() > 0).sum() > 8


def test_training_pipeline_yields_weights_and_mixed_labels(small: Path) -> None:
    from emotiond.training.config import AugmentConfig

    data = load_dataset(small, "auto", val_fraction=0.0)
    ds = make_pipeline(data.splits["train"], image_size=24, channels=1, num_classes=3, batch_size=6, training=True,
                       seed=0, augment=AugmentConfig(mixup_alpha=0.4, cutmix_alpha=1.0, rotation=10),
                       class_weights=np.array([1.0, 2.0, 3.0], np.float32))
    batches = list(ds.take(10))  # more batches than one epoch: the training pipeline repeats
    x, y, w = batches[0]
    assert x.shape == (6, 24, 24, 1) and y.shape == (6, 3) and w.shape == (6,)
    assert np.allclose(w.numpy(), (y.numpy() * [1, 2, 3]).sum(axis=1))
    assert any((b[1].numpy() % 1 != 0).any() for b in batches)


def test_cached_and_streamed_pipelines_give_the_daemons_pixels(small: Path) -> None:
    """The in-memory cache and per-epoch decoding yield identical batches, and a colour file of another size
    becomes the grey the daemon computes (OpenCV BT.601, then an area resize)."""
    import cv2
    from PIL import Image

    from emotiond.workers.preprocess import to_gray

    colour = small / "train" / "happy" / "zz_colour.png"
    rng = np.random.default_rng(4)
    Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(colour)
    data = load_dataset(small, "auto", val_fraction=0.0)
    split = data.splits["train"]
    batches = {}
    for cache in (True, False):
        ds = make_pipeline(split, image_size=24, channels=1, num_classes=3, batch_size=5, training=False, cache=cache)
        assert int(ds.cardinality()) == 5  # 25 images; Keras needs to know where an epoch ends
        batches[cache] = np.concatenate([x.numpy() for x, _ in ds])
    assert batches[True].shape == (25, 24, 24, 1)
    np.testing.assert_array_equal(batches[True], batches[False])
    expected = cv2.resize(to_gray(cv2.imread(str(colour))), (24, 24), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(batches[True][split.paths.index(str(colour)), :, :, 0], expected)
    rgb = make_pipeline(split, image_size=24, channels=3, num_classes=3, batch_size=25, training=False)
    pixels = next(iter(rgb))[0].numpy()[split.paths.index(str(colour))]
    expected_rgb = cv2.resize(cv2.cvtColor(cv2.imread(str(colour)), cv2.COLOR_BGR2RGB), (24, 24),
                              interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(pixels, expected_rgb)


def test_noise_and_the_folded_flip_are_what_they_claim() -> None:
    """Noise has the configured spread; with geometry on, the flip is folded into the resample and still
    mirrors exactly (a near-zero rotation leaves each image either unchanged or mirrored)."""
    import tensorflow as tf

    from emotiond.training.augment import pixel_augment
    from emotiond.training.config import AugmentConfig

    x = tf.fill([32, 16, 16, 1], 128.0)
    noisy = pixel_augment(x, AugmentConfig(noise_stddev=6.0), 1, 0).numpy() - 128.0
    assert 5.5 < noisy.std() < 6.5 and abs(noisy.mean()) < 0.5
    assert not np.allclose(noisy[0], noisy[1])  # images get different fields
    images = tf.constant(np.random.default_rng(1).uniform(0, 255, (16, 12, 12, 1)).astype(np.float32))
    out = pixel_augment(images, AugmentConfig(rotation=1e-6, flip=True), 3, 5).numpy()
    same = [np.allclose(o, i, atol=1e-2) for o, i in zip(out, images.numpy(), strict=True)]
    mirrored = [np.allclose(o, i[:, ::-1], atol=1e-2) for o, i in zip(out, images.numpy(), strict=True)]
    assert all(s or m for s, m in zip(same, mirrored, strict=True))
    assert 0 < sum(mirrored) < 16
