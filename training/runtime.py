"""Process-wide TensorFlow settings a training run needs: seeds, determinism, precision and device strategy.

They are global in TensorFlow, so they are set in one place and the precision policy is restored afterwards;
otherwise one mixed-precision run would silently change every model built later in the same process.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

log = logging.getLogger(__name__)


def seed_everything(seed: int, deterministic_ops: bool = False) -> None:
    """Seed Python, NumPy and TensorFlow; optionally make kernels deterministic (slower)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    if deterministic_ops:
        tf.config.experimental.enable_op_determinism()


def pick_strategy() -> Any:
    """MirroredStrategy across GPUs when more than one is visible, else the default (single device)."""
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        log.info("training on %d GPUs with MirroredStrategy", len(gpus))
        return tf.distribute.MirroredStrategy()
    log.info("training on %s", gpus[0].name if gpus else "CPU")
    return tf.distribute.get_strategy()


@contextlib.contextmanager
def precision(mixed: bool) -> Iterator[None]:
    """Use the mixed_float16 policy for the duration (outputs stay float32 in every architecture)."""
    import keras

    previous = keras.mixed_precision.global_policy().name
    if mixed:
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)
