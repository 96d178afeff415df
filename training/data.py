"""Load a dataset into labelled splits and turn a split into a tf.data pipeline.

Loading (which files, which labels, which split) is plain Python and checked up front so that every data
problem surfaces as a readable error before TensorFlow starts. The tf.data side decodes in parallel, resizes,
converts colour, caches the decoded pixels, shuffles, batches and prefetches; augmentation (training.augment)
runs on whole batches inside the same graph.
"""

from __future__ import annotations

import logging
import math
import os
import time
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
    """Either image file paths or in-memory uint8 images (FER CSV, or decoded once: grey or RGB), with integer
    class indices."""

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


DECODE_THREADS = 4
DECODE_CHUNK = 64


def fit_image(image: np.ndarray, image_size: int, channels: int, bgr: bool = False) -> np.ndarray:
    """A uint8 image (H x W grey, H x W x 1, or H x W x 3: RGB, or BGR as OpenCV reads files when ``bgr``) at
    the model's size and colour.

    Grey comes from the same OpenCV BT.601 conversion the daemon applies to camera frames, so training,
    evaluation and serving see the same pixels; shrinking averages pixels (no aliasing), enlarging is bilinear.
    """
    import cv2

    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if channels == 1 and image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY if bgr else cv2.COLOR_RGB2GRAY)
    elif channels == 3 and image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    elif channels == 3 and bgr:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if image.shape[:2] != (image_size, image_size):
        shrink = image.shape[0] > image_size or image.shape[1] > image_size
        image = cv2.resize(image, (image_size, image_size),
                           interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return image.reshape(image_size, image_size, channels)


def read_image(path: str | bytes, image_size: int, channels: int) -> np.ndarray:
    """Decode one image file (PNG, JPEG, BMP, GIF; any depth; alpha dropped) with OpenCV and fit it."""
    import cv2

    name = path.decode() if isinstance(path, bytes) else path
    image = cv2.imread(name, cv2.IMREAD_ANYCOLOR)
    if image is None:
        raise DatasetError(f"{name}: cannot decode (it passed the scan; was it changed since?)")
    return fit_image(image, image_size, channels, bgr=True)


def decode_images(split: Split, image_size: int, channels: int) -> np.ndarray:
    """Every image of a split decoded once into one uint8 N x H x W x C array, in split order (the cache).

    OpenCV releases the GIL while it decodes, so a few threads decode in parallel.
    """
    from concurrent.futures import ThreadPoolExecutor

    started = time.monotonic()
    out = np.empty((len(split), image_size, image_size, channels), np.uint8)
    if split.images is not None:
        for i, image in enumerate(split.images):
            out[i] = fit_image(image, image_size, channels)
    else:
        paths = split.paths or []

        def decode_range(begin: int, end: int) -> None:
            for i in range(begin, end):
                out[i] = read_image(paths[i], image_size, channels)

        threads = max(1, min(DECODE_THREADS, os.cpu_count() or 1))
        step = math.ceil(len(paths) / threads) if paths else 1
        with ThreadPoolExecutor(threads, thread_name_prefix="decode") as pool:
            for job in [pool.submit(decode_range, b, min(b + step, len(paths))) for b in range(0, len(paths), step)]:
                job.result()
    log.log(logging.DEBUG if split.paths is None else logging.INFO, "decoded %d images into a %.1f MB cache in "
            "%.2f s", len(out), out.nbytes / 1e6, time.monotonic() - started)
    return out


def decoded(split: Split, image_size: int, channels: int) -> Split:
    """The split with its images decoded once into memory, for callers that build many pipelines from it."""
    return Split(labels=split.labels, images=decode_images(split, image_size, channels))


def decode_split(split: Split, image_size: int, channels: int) -> Any:
    """A tf.data.Dataset of (float32 HxWxC image in 0..255, int label), decoded exactly as training decodes."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((decode_images(split, image_size, channels), split.labels))
    return ds.map(tf.autograph.experimental.do_not_convert(lambda x, y: (tf.cast(x, tf.float32), y)),
                  num_parallel_calls=tf.data.AUTOTUNE)


def _batches_from_memory(split: Split, image_size: int, channels: int, batch_size: int, training: bool, seed: int,
                         shuffle_buffer: int) -> Any:
    """Batches gathered from the decoded array: only indices are shuffled, each batch is one gather."""
    import tensorflow as tf

    images = tf.constant(decode_images(split, image_size, channels))
    labels = tf.constant(split.labels.astype(np.int32))
    ds = tf.data.Dataset.range(len(split))
    if training:
        ds = ds.repeat().shuffle(min(shuffle_buffer, len(split)), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=False)
    return ds.map(tf.autograph.experimental.do_not_convert(lambda idx: (tf.gather(images, idx),
                                                                        tf.gather(labels, idx))),
                  num_parallel_calls=tf.data.AUTOTUNE)


def _batches_streamed(split: Split, image_size: int, channels: int, batch_size: int, training: bool, seed: int,
                      shuffle_buffer: int, cache: bool | str) -> Any:
    """Batches decoded as files are read, optionally cached to a file by tf.data (for sets larger than memory).

    Files are decoded in chunks, one Python call per chunk, several chunks at a time (OpenCV drops the GIL).
    """
    import tensorflow as tf

    def decode_chunk(paths: np.ndarray) -> np.ndarray:
        return np.stack([read_image(path, image_size, channels) for path in paths])

    def load(paths: Any, labels: Any) -> Any:
        images = tf.numpy_function(decode_chunk, [paths], tf.uint8, stateful=False)
        images.set_shape([None, image_size, image_size, channels])
        return images, labels

    ds = tf.data.Dataset.from_tensor_slices((split.paths or [], split.labels)).batch(DECODE_CHUNK)
    ds = ds.map(tf.autograph.experimental.do_not_convert(load), num_parallel_calls=tf.data.AUTOTUNE).unbatch()
    ds = ds.apply(tf.data.experimental.assert_cardinality(len(split)))  # unbatch forgets it; Keras needs it
    if cache:
        ds = ds.cache(str(cache))
    if training:
        ds = ds.repeat().shuffle(min(shuffle_buffer, len(split)), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size, drop_remainder=False)


def make_pipeline(split: Split, *, image_size: int, channels: int, num_classes: int, batch_size: int,
                  training: bool, seed: int = 0, cache: bool | str = True, shuffle_buffer: int = 20000,
                  augment: Any = None, class_weights: np.ndarray | None = None) -> Any:
    """decode (parallel) → cache → (repeat, shuffle) → batch → float, one-hot, (augment, mix) → prefetch.

    ``cache=True`` decodes every image once into a uint8 array in memory and each batch is a single gather
    from it; a path caches decoded images to that file; ``False`` decodes every epoch. Everything after
    batching is one graph function over the whole batch, so augmentation is vectorised.

    Training pipelines repeat forever so augmentation randomness is indexed by a global batch counter and
    never replays; pass ``steps_per_epoch(len(split), batch_size)`` to fit. Labels are one-hot so MixUp and
    CutMix can blend them; with ``class_weights`` a third element carries per-sample weights.
    """
    import tensorflow as tf

    from emotiond.training.augment import build_batch_augmenter

    if len(split) == 0:
        raise DatasetError("cannot build an input pipeline for an empty split")
    if cache is True or split.paths is None:
        ds = _batches_from_memory(split, image_size, channels, batch_size, training, seed, shuffle_buffer)
    else:
        ds = _batches_streamed(split, image_size, channels, batch_size, training, seed, shuffle_buffer, cache)
    augmenter = build_batch_augmenter(augment, seed=seed) if training and augment is not None else None
    weights = None if class_weights is None else tf.constant(class_weights, tf.float32)

    def finish(step: Any, batch: Any) -> Any:
        x, y = tf.cast(batch[0], tf.float32), tf.one_hot(batch[1], num_classes)
        if augmenter is not None:
            x, y = augmenter(step, (x, y))
        if weights is None:
            return x, y
        return x, y, tf.reduce_sum(y * weights, axis=-1)

    ds = ds.enumerate().map(tf.autograph.experimental.do_not_convert(finish), num_parallel_calls=tf.data.AUTOTUNE)
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
