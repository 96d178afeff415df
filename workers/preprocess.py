"""Face crops for the classifier, exactly as a bundle's ``preprocessing`` describes them.

Boxes are made square by growing the short side, widened by the margin, and regions outside the frame are
filled with the mean of the frame's bottom rows (the convention the FER2013 models were trained with).
The crops hold raw 0..255 values; scaling is inside the model.

Alignment: where a face's roll is known (BlazeFace's eyes, or the angle a Haar region was turned by to find
it), its crop is cut from the frame turned about the box's centre so the eyes are level, as the faces of the
training data are; the same region, only upright. Faces of unknown roll are cut exactly as before.
"""

from __future__ import annotations

import cv2
import numpy as np

from emotiond.core.bundle import BundleSpec


def to_gray(pixels: np.ndarray) -> np.ndarray:
    """Grey once per frame; detection and grey models share it."""
    if pixels.ndim == 2:
        return pixels
    if pixels.shape[2] == 1:
        return pixels[:, :, 0]
    return cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY)


def crop_region(box: tuple[int, int, int, int] | np.ndarray, spec: BundleSpec) -> tuple[int, int, int, int]:
    x, y, w, h = (int(v) for v in box)
    crop = spec.preprocessing.crop
    if crop.square:
        if h > w:
            x -= (h - w) // 2
            w = h
        elif w > h:
            y -= (w - h) // 2
            h = w
    margin_x = crop.margin_px + round(crop.margin_ratio * w)
    margin_y = crop.margin_px + round(crop.margin_ratio * h)
    return x - margin_x, y - margin_y, w + 2 * margin_x, h + 2 * margin_y


def _cut(image: np.ndarray, region: tuple[int, int, int, int], fill: float | tuple) -> np.ndarray:
    x, y, w, h = region
    height, width = image.shape[:2]
    x0, y0, x1, y1 = max(0, x), max(0, y), min(width, x + w), min(height, y + h)
    if x1 <= x0 or y1 <= y0:
        return np.full((max(1, h), max(1, w), *image.shape[2:]), fill, image.dtype)
    inner = image[y0:y1, x0:x1]
    if (x0, y0, x1, y1) == (x, y, x + w, y + h):
        return inner
    return cv2.copyMakeBorder(inner, y0 - y, y + h - y1, x0 - x, x + w - x1, cv2.BORDER_CONSTANT, value=fill)


def _cut_upright(image: np.ndarray, region: tuple[int, int, int, int], roll: float, size: tuple[int, int],
                 fill: float | tuple) -> np.ndarray:
    """``region`` turned by ``roll`` degrees (counter-clockwise on screen) about its centre, resized to
    ``size``, in one warp."""
    x, y, w, h = region
    scale_x, scale_y = size[0] / max(1, w), size[1] / max(1, h)
    turn = cv2.getRotationMatrix2D((x + w / 2, y + h / 2), roll, 1.0)
    # cv2.resize's pixel-centre convention, so a roll of 0 gives the crop resize would
    place = np.array([[scale_x, 0.0, (0.5 - x) * scale_x - 0.5], [0.0, scale_y, (0.5 - y) * scale_y - 0.5]])
    matrix = place @ np.vstack([turn, [0.0, 0.0, 1.0]])
    return cv2.warpAffine(image, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=fill)


def crop_faces(pixels: np.ndarray, gray: np.ndarray, boxes: np.ndarray, spec: BundleSpec,
               rolls: np.ndarray | None = None) -> np.ndarray:
    """N x H x W x C float32 crops for ``boxes`` (full-frame x y w h); faces with a known roll (degrees, not
    NaN) in ``rolls`` are turned upright."""
    size = (spec.input.width, spec.input.height)
    out = np.empty((len(boxes), spec.input.height, spec.input.width, spec.input.channels), np.float32)
    if not len(boxes):
        return out
    color = spec.preprocessing.color
    if spec.input.channels == 1 or color == "gray":
        source = gray
        fill: float | tuple = float(gray[-2:].mean())
    else:
        source = pixels if color == "bgr" else cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
        fill = tuple(float(v) for v in source[-2:].reshape(-1, source.shape[2]).mean(axis=0))
    for i, box in enumerate(boxes):
        region = crop_region(box, spec)
        if rolls is not None and not np.isnan(rolls[i]):
            face = _cut_upright(source, region, float(rolls[i]), size, fill)
        else:
            face = cv2.resize(_cut(source, region, fill), size, interpolation=cv2.INTER_LINEAR)
        out[i] = face.reshape(out.shape[1:])
    return out
