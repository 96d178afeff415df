"""Classifier backends: one compiled call per batch of face crops, never ``Model.predict()``.

* ``litert``: the bundle's model.tflite in a LiteRT interpreter, one interpreter per padded batch size.
  The cheaper call per face, and the worker never imports TensorFlow.
* ``tf``: the bundle's model.keras under ``tf.function``, traced once per padded batch size; dearer per face,
  most of all for a single face (measured costs: docs/architecture.md).

Batches are padded up to the next bucket so shapes, and therefore compiled graphs, stay few.
"""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np

from emotiond.core.bundle import Bundle, BundleError, check_model_shapes
from emotiond.workers.litert import LiteRTModel

log = logging.getLogger(__name__)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Classifier(Protocol):
    labels: tuple[str, ...]

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        """N x H x W x C float32 raw pixels -> N x len(labels) probabilities."""
        ...


def bucket(n: int) -> int:
    for size in BATCH_BUCKETS:
        if n <= size:
            return size
    return n


def _pad(faces: np.ndarray, size: int) -> np.ndarray:
    if len(faces) == size:
        return faces
    padded = np.zeros((size, *faces.shape[1:]), np.float32)
    padded[: len(faces)] = faces
    return padded


class LiteRTClassifier:
    def __init__(self, bundle: Bundle, threads: int = 1):
        if bundle.tflite_path is None:
            raise BundleError(f"{bundle.path}: no model.tflite; run `emotiond models export-tflite {bundle.path}`")
        self.labels = bundle.labels
        self._model = LiteRTModel(bundle.tflite_path, threads)
        check_model_shapes(self._model.input_shape, self._model.output_shape, bundle.spec)

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        if not len(faces):
            return np.zeros((0, len(self.labels)), np.float32)
        size = bucket(len(faces))
        return self._model(_pad(faces.astype(np.float32, copy=False), size))[: len(faces)]


class TFFunctionClassifier:
    def __init__(self, bundle: Bundle, threads: int = 1):
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(max(1, threads))
        tf.config.threading.set_inter_op_parallelism_threads(1)
        import keras

        self.labels = bundle.labels
        model = keras.models.load_model(bundle.keras_path, compile=False)
        check_model_shapes(tuple(model.input_shape), tuple(model.output_shape), bundle.spec)
        self._call = tf.function(lambda x: model(x, training=False))

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        if not len(faces):
            return np.zeros((0, len(self.labels)), np.float32)
        size = bucket(len(faces))
        return self._call(_pad(faces.astype(np.float32, copy=False), size)).numpy()[: len(faces)]


def open_classifier(bundle: Bundle, backend: str, threads: int = 1) -> Classifier:
    if backend == "litert":
        return LiteRTClassifier(bundle, threads)
    if backend == "tf":
        return TFFunctionClassifier(bundle, threads)
    raise ValueError(f"unknown classifier backend {backend!r}")
