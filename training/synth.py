"""A synthetic facial-expression dataset: drawn faces whose brows, eyes and mouth change with the class.

FER2013 cannot be shipped or downloaded in CI, yet the training stack needs an end-to-end proof that a model
learns expression geometry rather than noise. Each class has its own brow slant and height, eye openness and
mouth shape; pose, scale, lighting and sensor noise are random so the task is not solvable by pixel lookup.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emotiond.core.bundle import FER_PLUS_LABELS
from emotiond.training.errors import DatasetError

log = logging.getLogger(__name__)

RENDER = 128  # faces are drawn large and downscaled, which anti-aliases the strokes


@dataclass(frozen=True)
class Expression:
    """Face geometry in units of the face radius. Brow y values are offsets above the eye (negative = up)."""

    brow_inner: float
    brow_outer: float
    eye_open: float
    mouth: str  # "line", "smile", "frown", "o", "wide", "sneer", "smirk"
    mouth_width: float
    asymmetric: bool = False


EXPRESSIONS: dict[str, Expression] = {
    "angry": Expression(brow_inner=-0.05, brow_outer=-0.28, eye_open=0.035, mouth="line", mouth_width=0.22),
    "disgust": Expression(brow_inner=-0.12, brow_outer=-0.12, eye_open=0.04, mouth="sneer", mouth_width=0.34,
                          asymmetric=True),
    "fear": Expression(brow_inner=-0.34, brow_outer=-0.22, eye_open=0.13, mouth="wide", mouth_width=0.42),
    "happy": Expression(brow_inner=-0.2, brow_outer=-0.2, eye_open=0.06, mouth="smile", mouth_width=0.48),
    "sad": Expression(brow_inner=-0.32, brow_outer=-0.1, eye_open=0.06, mouth="frown", mouth_width=0.36),
    "surprise": Expression(brow_inner=-0.4, brow_outer=-0.4, eye_open=0.13, mouth="o", mouth_width=0.2),
    "neutral": Expression(brow_inner=-0.2, brow_outer=-0.2, eye_open=0.07, mouth="line", mouth_width=0.4),
    "contempt": Expression(brow_inner=-0.2, brow_outer=-0.2, eye_open=0.06, mouth="smirk", mouth_width=0.36,
                           asymmetric=True),
}


def _draw_face(expr: Expression, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image, ImageDraw

    s = RENDER
    img = Image.new("L", (s, s), int(rng.uniform(20, 110)))
    d = ImageDraw.Draw(img)
    cx, cy, r = s / 2, s / 2, s * 0.42
    skin = int(rng.uniform(150, 230))
    ink = int(rng.uniform(10, 60))
    d.ellipse([cx - r * 0.85, cy - r, cx + r * 0.85, cy + r], fill=skin)
    jitter = lambda scale: rng.normal(0, scale)  # noqa: E731 - small per-feature wobble
    width = max(2, int(s * 0.03))
    eye_y = cy - r * 0.18
    for side in (-1, 1):
        ex = cx + side * r * 0.36
        eh = r * max(0.02, expr.eye_open + jitter(0.008))
        ew = r * 0.16
        d.ellipse([ex - ew, eye_y - eh, ex + ew, eye_y + eh], fill=ink)
        inner, outer = expr.brow_inner, expr.brow_outer
        if expr.asymmetric and side == 1:
            inner, outer = inner - 0.08, outer - 0.08
        bx_in, bx_out = cx + side * r * 0.12, cx + side * r * 0.6
        d.line([(bx_in, eye_y + r * (inner + jitter(0.02))), (bx_out, eye_y + r * (outer + jitter(0.02)))],
               fill=ink, width=width + 1)
    my, mw = cy + r * 0.5, r * (expr.mouth_width + jitter(0.02))
    if expr.mouth == "line":
        d.line([(cx - mw, my), (cx + mw, my)], fill=ink, width=width)
    elif expr.mouth in ("smile", "frown"):
        depth = r * 0.22
        box = [cx - mw, my - depth, cx + mw, my + depth]
        if expr.mouth == "smile":
            d.arc(box, 10, 170, fill=ink, width=width + 1)
        else:
            d.arc([box[0], box[1] + depth, box[2], box[3] + depth], 190, 350, fill=ink, width=width + 1)
    elif expr.mouth == "o":
        d.ellipse([cx - mw, my - r * 0.22, cx + mw, my + r * 0.14], fill=ink)
    elif expr.mouth == "wide":
        d.ellipse([cx - mw, my - r * 0.08, cx + mw, my + r * 0.1], fill=ink)
        d.line([(cx - mw * 0.8, my), (cx + mw * 0.8, my)], fill=skin, width=max(1, width // 2))
    elif expr.mouth == "sneer":
        d.line([(cx - mw, my + r * 0.05), (cx, my), (cx + mw * 0.4, my - r * 0.12), (cx + mw, my - r * 0.05)],
               fill=ink, width=width)
        d.line([(cx + r * 0.05, cy + r * 0.1), (cx + r * 0.2, cy + r * 0.2)], fill=ink, width=width)
    elif expr.mouth == "smirk":
        d.line([(cx - mw, my), (cx + mw * 0.3, my), (cx + mw, my - r * 0.2)], fill=ink, width=width)
    arr = np.asarray(img, dtype=np.float32)
    return arr


def _pose_and_light(face: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image

    img = Image.fromarray(face.astype(np.uint8))
    angle = rng.uniform(-12, 12)
    scale = rng.uniform(0.85, 1.1)
    tx, ty = rng.uniform(-0.06, 0.06, size=2) * RENDER
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    a, c = math.radians(angle), RENDER / 2
    cos, sin = math.cos(a) / scale, math.sin(a) / scale
    # Affine data maps each output pixel back to its source pixel: rotate and scale about the centre, then shift.
    data = (cos, -sin, c - cos * c + sin * c - tx, sin, cos, c - sin * c - cos * c - ty)
    img = img.transform((RENDER, RENDER), Image.Transform.AFFINE, data, resample=Image.Resampling.BILINEAR,
                        fillcolor=int(face[0, 0]))
    img = img.resize((size, size), Image.Resampling.LANCZOS)
    arr = np.asarray(img, dtype=np.float32)
    theta = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:size, 0:size] / max(1, size - 1) - 0.5
    gradient = 1.0 + rng.uniform(0.1, 0.45) * (np.cos(theta) * xx + np.sin(theta) * yy) * 2
    arr = arr * gradient * rng.uniform(0.75, 1.2) + rng.uniform(-20, 20)
    arr = arr + rng.normal(0, rng.uniform(2, 10), size=arr.shape)
    return np.clip(arr, 0, 255).astype(np.uint8)


def render_face(label: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """One grey ``size x size`` uint8 face showing ``label``."""
    if label not in EXPRESSIONS:
        raise DatasetError(f"no synthetic expression for {label!r}; known: {', '.join(EXPRESSIONS)}")
    return _pose_and_light(_draw_face(EXPRESSIONS[label], rng), size, rng)


def generate(out: Path, counts: dict[str, int], size: int = 48, labels: Sequence[str] = FER_PLUS_LABELS[:7],
             seed: int = 0, rgb: bool = False) -> dict[str, int]:
    """Write ``out/<split>/<label>/<n>.png`` with ``counts[split]`` images per class; return totals."""
    from PIL import Image

    if size < 8:
        raise DatasetError("synthetic image size must be at least 8 pixels")
    totals: dict[str, int] = {}
    for split_index, (split, per_class) in enumerate(counts.items()):
        rng = np.random.default_rng([seed, split_index])
        for label in labels:
            folder = out / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                face = render_face(label, size, rng)
                image = Image.fromarray(face).convert("RGB") if rgb else Image.fromarray(face)
                image.save(folder / f"{label}_{i:05d}.png")
        totals[split] = per_class * len(labels)
        log.info("wrote %d %s images to %s", totals[split], split, out / split)
    return totals
