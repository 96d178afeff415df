"""Batch augmentation as tf ops inside the input pipeline, each switched on by AugmentConfig.

Every random draw is stateless and keyed by (seed, global batch index), so a run with the same seed sees the
same augmented batches, and augmentation never ends up inside the exported model graph. Geometric changes
(rotation, zoom, translation) are one projective transform per image, so they cost a single resample.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from emotiond.training.config import AugmentConfig


def _seed(base: int, step: Any, salt: int) -> Any:
    import tensorflow as tf

    return tf.stack([tf.constant(base, tf.int64), tf.cast(step, tf.int64) * 64 + salt])


def _uniform(shape: Any, lo: float, hi: float, seed: Any) -> Any:
    import tensorflow as tf

    return tf.random.stateless_uniform(shape, seed=seed, minval=lo, maxval=hi)


def _affine(x: Any, cfg: AugmentConfig, base: int, step: Any) -> Any:
    """Random rotation, zoom and translation about the image centre (reflect padding)."""
    import tensorflow as tf

    b = tf.shape(x)[0]
    h = tf.cast(tf.shape(x)[1], tf.float32)
    w = tf.cast(tf.shape(x)[2], tf.float32)
    angle = _uniform([b], -1.0, 1.0, _seed(base, step, 1)) * (cfg.rotation * math.pi / 180.0)
    zoom = _uniform([b], 1.0 - cfg.zoom, 1.0 + cfg.zoom, _seed(base, step, 2))
    tx = _uniform([b], -cfg.translation, cfg.translation, _seed(base, step, 3)) * w
    ty = _uniform([b], -cfg.translation, cfg.translation, _seed(base, step, 4)) * h
    cx, cy = (w - 1.0) / 2.0, (h - 1.0) / 2.0
    # The transform maps each output pixel to the input pixel it samples from.
    a0 = tf.cos(angle) / zoom
    a1 = -tf.sin(angle) / zoom
    b0 = tf.sin(angle) / zoom
    b1 = tf.cos(angle) / zoom
    a2 = cx - a0 * cx - a1 * cy - tx
    b2 = cy - b0 * cx - b1 * cy - ty
    zeros = tf.zeros_like(a0)
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=x, transforms=transforms, output_shape=tf.shape(x)[1:3], fill_value=0.0,
        interpolation="BILINEAR", fill_mode="REFLECT")


def _colour_jitter(x: Any, strength: float, base: int, step: Any) -> Any:
    """RGB: per-image saturation and hue jitter. Grey: per-image gamma (the grey analogue of colour shifts)."""
    import tensorflow as tf

    b = tf.shape(x)[0]
    if x.shape[-1] == 3:
        hsv = tf.image.rgb_to_hsv(x / 255.0)
        sat = _uniform([b, 1, 1], 1.0 - strength, 1.0 + strength, _seed(base, step, 10))
        hue = _uniform([b, 1, 1], -0.1 * strength, 0.1 * strength, _seed(base, step, 11))
        h = tf.math.floormod(hsv[..., 0] + hue, 1.0)
        s = tf.clip_by_value(hsv[..., 1] * sat, 0.0, 1.0)
        return tf.image.hsv_to_rgb(tf.stack([h, s, hsv[..., 2]], axis=-1)) * 255.0
    gamma = _uniform([b, 1, 1, 1], 1.0 - 0.5 * strength, 1.0 + 0.5 * strength, _seed(base, step, 12))
    return 255.0 * tf.pow(tf.clip_by_value(x / 255.0, 1e-6, 1.0), gamma)


def pixel_augment(x: Any, cfg: AugmentConfig, base: int, step: Any) -> Any:
    """Apply the enabled per-image augmentations to a float batch in 0..255."""
    import tensorflow as tf

    b = tf.shape(x)[0]
    if cfg.geometric():
        x = _affine(x, cfg, base, step)
    if cfg.flip:
        flip = _uniform([b, 1, 1, 1], 0.0, 1.0, _seed(base, step, 5)) < 0.5
        x = tf.where(flip, tf.reverse(x, axis=[2]), x)
    if cfg.contrast:
        factor = _uniform([b, 1, 1, 1], 1.0 - cfg.contrast, 1.0 + cfg.contrast, _seed(base, step, 6))
        mean = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
        x = (x - mean) * factor + mean
    if cfg.brightness:
        x = x + _uniform([b, 1, 1, 1], -cfg.brightness, cfg.brightness, _seed(base, step, 7)) * 255.0
    if cfg.color_jitter:
        x = _colour_jitter(tf.clip_by_value(x, 0.0, 255.0), cfg.color_jitter, base, step)
    if cfg.noise_stddev:
        x = x + tf.random.stateless_normal(tf.shape(x), seed=_seed(base, step, 8), stddev=cfg.noise_stddev)
    return tf.clip_by_value(x, 0.0, 255.0)


def _beta(alpha: float, seed_a: Any, seed_b: Any) -> Any:
    import tensorflow as tf

    g1 = tf.random.stateless_gamma([], seed=seed_a, alpha=alpha)
    g2 = tf.random.stateless_gamma([], seed=seed_b, alpha=alpha)
    return g1 / (g1 + g2 + 1e-12)


def mixup(x: Any, y: Any, alpha: float, base: int, step: Any) -> tuple[Any, Any]:
    """Blend each image and label with a partner from the same batch by lambda ~ Beta(alpha, alpha)."""
    import tensorflow as tf

    perm = tf.argsort(_uniform([tf.shape(x)[0]], 0.0, 1.0, _seed(base, step, 20)))
    lam = _beta(alpha, _seed(base, step, 21), _seed(base, step, 22))
    return lam * x + (1 - lam) * tf.gather(x, perm), lam * y + (1 - lam) * tf.gather(y, perm)


def cutmix(x: Any, y: Any, alpha: float, base: int, step: Any) -> tuple[Any, Any]:
    """Paste a box from a partner image; the box area is 1 - lambda, lambda ~ Beta(alpha, alpha).

    Labels are mixed by the area actually pasted (after clipping the box at the border).
    """
    import tensorflow as tf

    h, w = tf.shape(x)[1], tf.shape(x)[2]
    hf, wf = tf.cast(h, tf.float32), tf.cast(w, tf.float32)
    perm = tf.argsort(_uniform([tf.shape(x)[0]], 0.0, 1.0, _seed(base, step, 30)))
    lam = _beta(alpha, _seed(base, step, 31), _seed(base, step, 32))
    cut = tf.sqrt(1.0 - lam)
    centre = _uniform([2], 0.0, 1.0, _seed(base, step, 33))
    y0 = tf.cast(tf.clip_by_value(centre[0] * hf - cut * hf / 2, 0.0, hf), tf.int32)
    y1 = tf.cast(tf.clip_by_value(centre[0] * hf + cut * hf / 2, 0.0, hf), tf.int32)
    x0 = tf.cast(tf.clip_by_value(centre[1] * wf - cut * wf / 2, 0.0, wf), tf.int32)
    x1 = tf.cast(tf.clip_by_value(centre[1] * wf + cut * wf / 2, 0.0, wf), tf.int32)
    rows = tf.logical_and(tf.range(h) >= y0, tf.range(h) < y1)
    cols = tf.logical_and(tf.range(w) >= x0, tf.range(w) < x1)
    mask = tf.cast(tf.logical_and(rows[:, None], cols[None, :]), x.dtype)[None, :, :, None]
    pasted = tf.reduce_sum(mask) / (hf * wf)
    mixed_x = x * (1 - mask) + tf.gather(x, perm) * mask
    return mixed_x, (1 - pasted) * y + pasted * tf.gather(y, perm)


def build_batch_augmenter(cfg: AugmentConfig, seed: int) -> Callable[[Any, Any], Any] | None:
    """A map function ``(step, (x, y)) -> (x, y)`` for ``dataset.enumerate()``, or None when nothing is on."""
    import tensorflow as tf

    mixers = [(name, alpha) for name, alpha in (("cutmix", cfg.cutmix_alpha), ("mixup", cfg.mixup_alpha)) if alpha]
    if not cfg.any_pixel() and not (mixers and cfg.mix_probability > 0):
        return None

    def apply(step: Any, batch: Any) -> Any:
        x, y = batch
        if cfg.any_pixel():
            x = pixel_augment(x, cfg, seed, step)
        if mixers and cfg.mix_probability > 0:
            draws = _uniform([2], 0.0, 1.0, _seed(seed, step, 40))
            do_mix = draws[0] < cfg.mix_probability
            use_first = draws[1] < 0.5 if len(mixers) == 2 else tf.constant(True)
            (n1, a1), (n2, a2) = mixers[0], mixers[-1]
            f1 = cutmix if n1 == "cutmix" else mixup
            f2 = cutmix if n2 == "cutmix" else mixup

            def mixed() -> Any:
                return tf.cond(use_first, lambda: f1(x, y, a1, seed, step), lambda: f2(x, y, a2, seed, step))

            x, y = tf.cond(do_mix, mixed, lambda: (x, y))
        return x, y

    return apply
