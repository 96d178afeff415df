"""Load a dataset into labelled splits and turn a split into a tf.data pipeline.

Loading (which files, which labels, which split) is plain Python and checked up front so that every data
problem surfaces as a readable error before TensorFlow starts. The tf.data side only decodes, resizes,
converts colour, caches, shuffles, batches and prefetches; augmentation is added by training.augment.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emotiond.training.errors import DatasetError
from emotiond.training.fercsv import is_fer_csv, read_fer_csv
from emotiond.training.labels import check_same_classes, named_or_custom, resolve_labels
from emotiond.training.scan import BadFile, scan_directory

log = logging.getLogger(__name__)


@dataclass
class Split:
    """Either image file paths or in-memory uint8 images (FER CSV), with integer class indices."""

    labels: np.ndarray
    paths: list[str] | None = None
    images: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, idx: np.ndarray) -> Split:
        return Split(labels=self.labels[idx], paths=None if self.paths is None else [self.paths[i] for i in idx],
                     images=None if self.images is None else self.images[idx])

    def counts(self, num_classes: int) -> list[int]:
        return np.bincount(self.labels, minlength=num_classes).tolist()


@dataclass
class Dataset:
    source: str
    labels: tuple[str, ...]
    splits: dict[str, Split]
    bad: list[BadFile] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"source": self.source, "labels": list(self.labels),
                "counts": {name: dict(zip(self.labels, s.counts(len(self.labels)), strict=True))
                           for name, s in self.splits.items()},
                "skipped_files": [{"path": str(b.path), "reason": b.reason} for b in self.bad], "notes": self.notes}


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, held_out): ``fraction`` of each class held out, at least one when a class has two."""
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    held: list[int] = []
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        n_held = min(len(idx) - 1, max(1, round(len(idx) * fraction))) if len(idx) > 1 else 0
        held.extend(idx[:n_held].tolist())
        keep.extend(idx[n_held:].tolist())
    return np.sort(np.array(keep, dtype=np.int64)), np.sort(np.array(held, dtype=np.int64))


def load_dataset(path: str | Path, labels: str | list[str] = "auto", val_fraction: float = 0.1, seed: int = 0,
                 require_train: bool = True) -> Dataset:
    """Read a directory dataset or FER2013 CSV; make a stratified val split when there is none."""
    path = Path(path).expanduser()
    data = _load_csv(path, labels) if is_fer_csv(path) else _load_directory(path, labels)
    if require_train:
        if "train" not in data.splits:
            raise DatasetError(f"{path}: no train split (expected a train/ folder or Usage=Training rows)")
        empty = [c for c, n in zip(data.labels, data.splits["train"].counts(len(data.labels)), strict=True) if n == 0]
        if empty:
            raise DatasetError(f"{path}: class(es) with no usable training images: {', '.join(empty)}")
        if "val" not in data.splits and val_fraction > 0:
            keep, held = stratified_split(data.splits["train"].labels, val_fraction, seed)
            data.splits["val"] = data.splits["train"].subset(held)
            data.splits["train"] = data.splits["train"].subset(keep)
            data.notes.append(f"no val split given: held out {len(held)} train images (stratified, seed {seed})")
            log.info("held out %d train images for validation (stratified, seed %d)", len(held), seed)
    for name, split in data.splits.items():
        for cls, n in zip(data.labels, split.counts(len(data.labels)), strict=True):
            if n == 0 and name != "train":
                data.notes.append(f"{name}: class {cls} has no images")
                log.warning("%s split: class %s has no images", name, cls)
    return data


def _load_directory(root: Path, labels_spec: str | list[str]) -> Dataset:
    scan = scan_directory(root, verify=True)
    per_split = {name: set(split.files) for name, split in scan.splits.items()}
    first = "train" if "train" in per_split else next(iter(per_split))
    labels = resolve_labels(labels_spec, per_split[first], f"{root}/{first}")
    for name, found in per_split.items():
        check_same_classes(labels, found, f"{root}/{name}")
    splits: dict[str, Split] = {}
    for name, split in scan.splits.items():
        paths: list[str] = []
        idx: list[int] = []
        for i, label in enumerate(labels):
            files = split.files.get(label, [])
            paths.extend(str(p) for p in files)
            idx.extend([i] * len(files))
        splits[name] = Split(labels=np.asarray(idx, dtype=np.int32), paths=paths)
    if scan.bad:
        log.warning("%d unreadable file(s) skipped under %s", len(scan.bad), root)
    return Dataset(source=str(root), labels=labels, splits=splits, bad=scan.bad)


def _load_csv(path: Path, labels_spec: str | list[str]) -> Dataset:
    labels = named_or_custom(labels_spec)
    if labels is None:
        labels = named_or_custom("fer2013")
    assert labels is not None
    csv_data = read_fer_csv(path, num_classes=len(labels))
    splits = {name: Split(labels=s.labels, images=s.images) for name, s in csv_data.splits.items()}
    bad = [BadFile(Path(f"{path}:{line}"), reason) for line, reason in csv_data.bad_rows]
    return Dataset(source=str(path), labels=labels, splits=splits, bad=bad)


def channels_for(color: str) -> int:
    return 1 if color == "gray" else 3


def decode_split(split: Split, image_size: int, channels: int) -> Any:
    """A tf.data.Dataset of (float32 HxWxC image in 0..255, int label), decoded in parallel."""
    import tensorflow as tf

    autotune = tf.data.AUTOTUNE
    size = (image_size, image_size)

    def finish(image: Any) -> Any:
        image = tf.cast(image, tf.float32)
        if channels == 1 and image.shape[-1] == 3:
            image = tf.image.rgb_to_grayscale(image)
        elif channels == 3 and image.shape[-1] == 1:
            image = tf.image.grayscale_to_rgb(image)
        def resample() -> Any:
            return tf.clip_by_value(tf.image.resize(image, size, antialias=True), 0.0, 255.0)

        # Most datasets are already at the model size; skipping the resample there saves most of the map cost.
        static = tuple(image.shape[:2])
        if None not in static:
            return image if static == size else resample()
        same = tf.reduce_all(tf.shape(image)[:2] == tf.constant(size))
        return tf.cond(same, lambda: tf.ensure_shape(image, [*size, channels]), resample)

    if split.images is not None:
        images = split.images[..., None] if split.images.ndim == 3 else split.images
        ds = tf.data.Dataset.from_tensor_slices((images, split.labels))
        return ds.map(lambda x, y: (finish(x), y), num_parallel_calls=autotune)

    def load(path: Any, label: Any) -> Any:
        raw = tf.io.read_file(path)
        image = tf.io.decode_image(raw, channels=3, expand_animations=False)
        image.set_shape([None, None, 3])
        return finish(image), label

    ds = tf.data.Dataset.from_tensor_slices((split.paths or [], split.labels))
    return ds.map(load, num_parallel_calls=autotune)


def make_pipeline(split: Split, *, image_size: int, channels: int, num_classes: int, batch_size: int,
                  training: bool, seed: int = 0, cache: bool | str = True, shuffle_buffer: int = 20000,
                  augment: Any = None, class_weights: np.ndarray | None = None) -> Any:
    """decode → resize → colour → cache → (repeat, shuffle) → batch → (augment, mix) → prefetch.

    Training pipelines repeat forever so augmentation randomness is indexed by a global batch counter and
    never replays; pass ``steps_per_epoch(len(split), batch_size)`` to fit. Labels are one-hot so MixUp and
    CutMix can blend them; with ``class_weights`` a third element carries per-sample weights.
    """
    import tensorflow as tf

    from emotiond.training.augment import build_batch_augmenter

    if len(split) == 0:
        raise DatasetError("cannot build an input pipeline for an empty split")
    ds = decode_split(split, image_size, channels)
    if cache:
        ds = ds.cache(str(cache) if isinstance(cache, str) else "")
    if training:
        ds = ds.repeat().shuffle(min(shuffle_buffer, len(split)), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=False)
    ds = ds.map(lambda x, y: (x, tf.one_hot(y, num_classes)), num_parallel_calls=tf.data.AUTOTUNE)
    if training and augment is not None:
        augmenter = build_batch_augmenter(augment, seed=seed)
        if augmenter is not None:
            ds = ds.enumerate().map(augmenter, num_parallel_calls=tf.data.AUTOTUNE)
    if class_weights is not None:
        weights = tf.constant(class_weights, tf.float32)
        ds = ds.map(lambda x, y: (x, y, tf.reduce_sum(y * weights, axis=-1)), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def steps_per_epoch(n: int, batch_size: int) -> int:
    return max(1, math.ceil(n / batch_size))


def class_weights_from_counts(counts: list[int]) -> np.ndarray:
    """Inverse-frequency weights, total / (classes x count), so a balanced set gets all ones."""
    arr = np.asarray(counts, dtype=np.float64)
    total = arr.sum()
    with np.errstate(divide="ignore"):
        weights = np.where(arr > 0, total / (len(arr) * np.maximum(arr, 1)), 0.0)
    return weights.astype(np.float32)
