"""Batch augmentation as tf ops inside the input pipeline, each switched on by AugmentConfig.

Every random draw is stateless and keyed by (seed, global batch index), so a run with the same seed sees the
same augmented batches, and augmentation never ends up inside the exported model graph. Everything works on
a whole batch at once: the per-image random numbers come from one draw, rotation, zoom, shift and flip are a
single projective resample, brightness and contrast one multiply-add, noise one gather, and CutMix or MixUp
one blend. Few ops per batch keep both the per-batch cost and the one-off tracing cost low.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

from emotiond.training.config import AugmentConfig

# Columns of the per-image uniform draw.
_ANGLE, _ZOOM, _SHIFT_X, _SHIFT_Y, _FLIP, _GAIN, _BRIGHTNESS, _NOISE, _JITTER_A, _JITTER_B = range(10)
_PER_IMAGE = 10
NOISE_BANK_BYTES = 8 << 20


def _seed(base: int, step: Any, salt: int) -> Any:
    import tensorflow as tf

    return tf.stack([tf.constant(base, tf.int64), tf.cast(step, tf.int64) * 64 + salt])


def _uniform(shape: Any, lo: float, hi: float, seed: Any) -> Any:
    import tensorflow as tf

    return tf.random.stateless_uniform(shape, seed=seed, minval=lo, maxval=hi)


def _spread(u: Any, amount: float) -> Any:
    """Map a uniform 0..1 draw to -amount..amount."""
    return (2.0 * u - 1.0) * amount


def _affine(x: Any, cfg: AugmentConfig, u: Any) -> Any:
    """Random rotation, zoom and translation about the image centre (reflect padding), with the horizontal
    flip folded into the same transform: one bilinear resample of the batch."""
    import tensorflow as tf

    h = tf.cast(tf.shape(x)[1], tf.float32)
    w = tf.cast(tf.shape(x)[2], tf.float32)
    angle = _spread(u[:, _ANGLE], cfg.rotation * math.pi / 180.0)
    zoom = 1.0 + _spread(u[:, _ZOOM], cfg.zoom)
    tx = _spread(u[:, _SHIFT_X], cfg.translation) * w
    ty = _spread(u[:, _SHIFT_Y], cfg.translation) * h
    cx, cy = (w - 1.0) / 2.0, (h - 1.0) / 2.0
    # The transform maps each output pixel (x, y) to the input pixel it samples: [a0 a1 a2; b0 b1 b2].
    a0 = tf.cos(angle) / zoom
    a1 = -tf.sin(angle) / zoom
    b0 = -a1
    b1 = a0
    a2 = cx - a0 * cx - a1 * cy - tx
    b2 = cy - b0 * cx - b1 * cy - ty
    if cfg.flip:
        # A flipped image samples output column w-1-x instead of x: shift by the width, negate the x terms.
        flipped = tf.cast(u[:, _FLIP] < 0.5, tf.float32)
        a2 = a2 + flipped * a0 * (w - 1.0)
        b2 = b2 + flipped * b0 * (w - 1.0)
        a0 = a0 * (1.0 - 2.0 * flipped)
        b0 = b0 * (1.0 - 2.0 * flipped)
    zeros = tf.zeros_like(a0)
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=x, transforms=transforms, output_shape=tf.shape(x)[1:3], fill_value=0.0,
        interpolation="BILINEAR", fill_mode="REFLECT")
    out.set_shape(x.shape)  # same size as the input; keeps the static shape the later steps rely on
    return out


def _colour_jitter(x: Any, strength: float, u: Any) -> Any:
    """RGB: per-image saturation and hue jitter. Grey: per-image gamma (the grey analogue of colour shifts)."""
    import tensorflow as tf

    first = u[:, _JITTER_A, None, None]
    if x.shape[-1] == 3:
        hsv = tf.image.rgb_to_hsv(x / 255.0)
        sat = 1.0 + _spread(first, strength)
        hue = _spread(u[:, _JITTER_B, None, None], 0.1 * strength)
        h = tf.math.floormod(hsv[..., 0] + hue, 1.0)
        s = tf.clip_by_value(hsv[..., 1] * sat, 0.0, 1.0)
        return tf.image.hsv_to_rgb(tf.stack([h, s, hsv[..., 2]], axis=-1)) * 255.0
    gamma = 1.0 + _spread(first[..., None], 0.5 * strength)
    return 255.0 * tf.pow(tf.clip_by_value(x / 255.0, 1e-6, 1.0), gamma)


@functools.lru_cache(maxsize=4)
def _noise_bank(base: int, shape: tuple[int, ...]) -> Any:
    """Unit Gaussian noise fields (iid per pixel), made once per seed and image shape.

    Each image takes a field drawn at random per batch, so adding noise costs one gather instead of fresh
    normals for every pixel, which cost as much as all the other pixel augmentations together. With hundreds
    of fields, no image meets the same field often enough for it to matter.
    """
    import numpy as np
    import tensorflow as tf

    count = int(np.clip(NOISE_BANK_BYTES // (4 * math.prod(shape)), 64, 512))
    with tf.init_scope():  # an eager constant, even when first asked for while a map function is traced
        return tf.random.stateless_normal([count, *shape], seed=[base, 8])


def _noise(x: Any, stddev: float, base: int, step: Any, u: Any) -> Any:
    import tensorflow as tf

    if None in x.shape[1:]:
        return tf.random.stateless_normal(tf.shape(x), seed=_seed(base, step, 8), stddev=stddev)
    bank = _noise_bank(base, tuple(int(v) for v in x.shape[1:]))
    count = int(bank.shape[0])
    pick = tf.minimum(tf.cast(u[:, _NOISE] * count, tf.int32), count - 1)
    return tf.gather(bank, pick) * stddev


def pixel_augment(x: Any, cfg: AugmentConfig, base: int, step: Any) -> Any:
    """Apply the enabled per-image augmentations to a float batch in 0..255."""
    import tensorflow as tf

    u = _uniform([tf.shape(x)[0], _PER_IMAGE], 0.0, 1.0, _seed(base, step, 1))
    if cfg.geometric():
        x = _affine(x, cfg, u)
    elif cfg.flip:
        x = tf.where(u[:, _FLIP, None, None, None] < 0.5, tf.reverse(x, axis=[2]), x)
    if cfg.contrast or cfg.brightness:
        # Contrast about each image's mean and a brightness shift, as one multiply-add over the batch.
        gain = 1.0 + _spread(u[:, _GAIN, None, None, None], cfg.contrast)
        shift = _spread(u[:, _BRIGHTNESS, None, None, None], cfg.brightness * 255.0)
        if cfg.contrast:
            shift = shift + tf.reduce_mean(x, axis=[1, 2], keepdims=True) * (1.0 - gain)
        x = x * gain + shift
    if cfg.color_jitter:
        x = _colour_jitter(tf.clip_by_value(x, 0.0, 255.0), cfg.color_jitter, u)
    if cfg.noise_stddev:
        x = x + _noise(x, cfg.noise_stddev, base, step, u)
    return tf.clip_by_value(x, 0.0, 255.0)


def _beta(alphas: tuple[float, ...], seed: Any) -> Any:
    """One Beta(a, a) draw per alpha, from a single gamma draw: g1 / (g1 + g2)."""
    import tensorflow as tf

    g = tf.random.stateless_gamma([2, len(alphas)], seed=seed, alpha=tf.constant(alphas, tf.float32))
    return g[0] / (g[0] + g[1] + 1e-12)


def _partner(x: Any, base: int, step: Any, salt: int) -> Any:
    """A random permutation of the batch: image i is mixed with image perm[i]."""
    import tensorflow as tf

    return tf.argsort(_uniform([tf.shape(x)[0]], 0.0, 1.0, _seed(base, step, salt)))


def _blend(x: Any, y: Any, perm: Any, pixel_weight: Any, label_weight: Any) -> tuple[Any, Any]:
    """Move each image and label towards its partner by the given weights (0 leaves them unchanged)."""
    import tensorflow as tf

    return x + (tf.gather(x, perm) - x) * pixel_weight, y + (tf.gather(y, perm) - y) * label_weight


def _cutmix_box(x: Any, lam: Any, centre: Any) -> tuple[Any, Any]:
    """A 1 x H x W x 1 mask of the pasted box (area 1 - lam, centred at ``centre`` in 0..1 units) and the
    share of pixels it covers after clipping at the border, which is the label weight."""
    import tensorflow as tf

    h, w = tf.shape(x)[1], tf.shape(x)[2]
    size = tf.cast(tf.stack([h, w]), tf.float32)
    half = tf.sqrt(1.0 - lam) * size / 2.0
    low = tf.cast(tf.clip_by_value(centre * size - half, 0.0, size), tf.int32)
    high = tf.cast(tf.clip_by_value(centre * size + half, 0.0, size), tf.int32)
    rows = tf.logical_and(tf.range(h) >= low[0], tf.range(h) < high[0])
    cols = tf.logical_and(tf.range(w) >= low[1], tf.range(w) < high[1])
    mask = tf.cast(tf.logical_and(rows[:, None], cols[None, :]), x.dtype)[None, :, :, None]
    return mask, tf.reduce_mean(mask)


def mixup(x: Any, y: Any, alpha: float, base: int, step: Any) -> tuple[Any, Any]:
    """Blend each image and label with a partner from the same batch by lambda ~ Beta(alpha, alpha)."""
    weight = 1.0 - _beta((alpha,), _seed(base, step, 21))[0]
    return _blend(x, y, _partner(x, base, step, 20), weight, weight)


def cutmix(x: Any, y: Any, alpha: float, base: int, step: Any) -> tuple[Any, Any]:
    """Paste a box from a partner image; the box area is 1 - lambda, lambda ~ Beta(alpha, alpha).

    Labels are mixed by the area actually pasted (after clipping the box at the border).
    """
    mask, pasted = _cutmix_box(x, _beta((alpha,), _seed(base, step, 31))[0], _uniform([2], 0.0, 1.0,
                                                                                      _seed(base, step, 33)))
    return _blend(x, y, _partner(x, base, step, 30), mask, pasted)


def mix_batch(x: Any, y: Any, cfg: AugmentConfig, base: int, step: Any) -> tuple[Any, Any]:
    """CutMix or MixUp (even odds when both are on) on ``mix_probability`` of the batches.

    The choice is arithmetic on the weights rather than graph branches: one blend runs for every batch, with
    weight 0 when the batch is not mixed, which keeps the graph small and quick to trace.
    """
    import tensorflow as tf

    draws = _uniform([4], 0.0, 1.0, _seed(base, step, 40))  # mix?, which, box centre y, box centre x
    alphas = tuple(a for a in (cfg.cutmix_alpha, cfg.mixup_alpha) if a)
    lam = _beta(alphas, _seed(base, step, 41))
    if cfg.cutmix_alpha:
        pixel_weight, label_weight = _cutmix_box(x, lam[0], draws[2:])
        if cfg.mixup_alpha:
            use_cutmix = tf.cast(draws[1] < 0.5, tf.float32)
            mix_weight = 1.0 - lam[1]
            pixel_weight = use_cutmix * pixel_weight + (1.0 - use_cutmix) * mix_weight
            label_weight = use_cutmix * label_weight + (1.0 - use_cutmix) * mix_weight
    else:
        pixel_weight = label_weight = 1.0 - lam[0]
    on = tf.cast(draws[0] < cfg.mix_probability, tf.float32)
    return _blend(x, y, _partner(x, base, step, 42), pixel_weight * on, label_weight * on)


def build_batch_augmenter(cfg: AugmentConfig, seed: int) -> Callable[[Any, Any], Any] | None:
    """A map function ``(step, (x, y)) -> (x, y)`` for ``dataset.enumerate()``, or None when nothing is on."""
    mixing = bool(cfg.cutmix_alpha or cfg.mixup_alpha) and cfg.mix_probability > 0
    if not cfg.any_pixel() and not mixing:
        return None

    def apply(step: Any, batch: Any) -> Any:
        x, y = batch
        if cfg.any_pixel():
            x = pixel_augment(x, cfg, seed, step)
        if mixing:
            x, y = mix_batch(x, y, cfg, seed, step)
        return x, y

    return apply
