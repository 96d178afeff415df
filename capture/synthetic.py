"""Moving-face videos composed from real face photos shipped with the package (config/demo/: Grace Hopper, public
domain, as matplotlib ships it; the astronaut Eileen Collins, NASA, public domain, and a coffee cup, CC0 by
Rachel Michetti, as scikit-image ships them), so the demo needs neither of those packages.

Used by the ``demo`` source, the tests and the benchmarks. Every frame is a pure function of its index,
so the true face boxes are known exactly and no network or camera is needed.

With ``expressions``, a neutral face (Grace Hopper, whom the default model calls neutral) cross-fades into a
smiling one (the astronaut, called happy) at the same place and size and back again in every pass over the
scene, so a tracked face's smoothed emotion changes while its track goes on.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from emotiond.core.settings import shipped_config

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class SceneSpec:
    faces: int = 2
    width: int = 640
    height: int = 480
    frames: int = 300
    fps: float = 30.0
    # Each face's side as a fraction of the frame height, one per face, before its +-20% zoom (a face of 0.17 or
    # more of the height overflows its cell in a 2x2 grid); empty keeps the default sizes.
    face_sizes: tuple[float, ...] = ()
    # The neutral face smiles for a while in every pass: it cross-fades into the smiling photo and back.
    expressions: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.faces <= 4:
            raise ValueError("a scene holds 1 to 4 faces")
        if self.width < 160 or self.height < 120 or self.frames < 1:
            raise ValueError("scene too small")
        if self.face_sizes and (len(self.face_sizes) != self.faces
                                or not all(0.0 < size <= 0.5 for size in self.face_sizes)):
            raise ValueError("face_sizes gives one size per face, each above 0 and at most 0.5 of the height")


@dataclass(frozen=True)
class _Photo:
    image: np.ndarray  # BGR sprite cut around the face
    alpha: np.ndarray  # float32 feathered ellipse, same HxW
    face: Box  # face box inside the sprite

    @functools.cached_property
    def half(self) -> np.ndarray:
        """The sprite at half size: shrinking from it by less than half costs a quarter of shrinking the whole."""
        return cv2.resize(self.image, (self.image.shape[1] // 2, self.image.shape[0] // 2),
                          interpolation=cv2.INTER_AREA)

    def scaled(self, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """Sprite and alpha at ``width`` x ``height``."""
        source = self.half if 2 * width < self.image.shape[1] else self.image
        sprite = cv2.resize(source, (width, height), interpolation=cv2.INTER_AREA)
        return sprite, cv2.resize(self.alpha, (width, height))


def _cut(image: np.ndarray, face: Box, pad: float) -> _Photo:
    x, y, w, h = face
    px, py = int(w * pad), int(h * pad)
    x0, y0 = max(0, x - px), max(0, y - py)
    x1, y1 = min(image.shape[1], x + w + px), min(image.shape[0], y + h + int(py * 1.3))
    sprite = np.ascontiguousarray(image[y0:y1, x0:x1])
    alpha = np.zeros(sprite.shape[:2], np.float32)
    cv2.ellipse(alpha, (sprite.shape[1] // 2, sprite.shape[0] // 2),
                (sprite.shape[1] // 2 - 2, sprite.shape[0] // 2 - 2), 0, 0, 360, 1.0, -1)
    alpha = cv2.GaussianBlur(alpha, (0, 0), max(2.0, w * 0.06))
    return _Photo(sprite, alpha, (x - x0, y - y0, w, h))


@functools.cache
def _photos() -> tuple[_Photo, _Photo]:
    """Grace Hopper and the astronaut, with their measured face boxes."""
    grace = _demo_image("grace_hopper.jpg")
    astronaut = _demo_image("astronaut.png")
    return _cut(grace, (155, 105, 222, 222), 0.45), _cut(astronaut, (177, 66, 95, 95), 0.6)


def _demo_image(name: str) -> np.ndarray:
    image = cv2.imread(str(shipped_config("demo", name)))
    if image is None:
        raise FileNotFoundError(f"demo photo {name} is missing from the package's config/demo")
    return image


@functools.cache
def _background(width: int, height: int) -> np.ndarray:
    coffee = _demo_image("coffee.png")
    return cv2.GaussianBlur(cv2.resize(coffee, (width, height)), (0, 0), 9)


def _actors(spec: SceneSpec) -> list[tuple[_Photo, float, tuple[float, float, float, float]]]:
    """(photo, face size in px, region x0, y0, x1, y1 as fractions) per face."""
    grace, astronaut = _photos()
    actors = _default_actors(spec, grace, astronaut)
    if spec.face_sizes:
        return [(photo, size * spec.height, cell) for (photo, _, cell), size in zip(actors, spec.face_sizes,
                                                                                   strict=True)]
    return actors


def _default_actors(spec: SceneSpec, grace: _Photo,
                    astronaut: _Photo) -> list[tuple[_Photo, float, tuple[float, float, float, float]]]:
    if spec.faces == 1:
        return [(astronaut, 0.26 * spec.height, (0.0, 0.0, 1.0, 1.0))]
    cells = [(0.0, 0.0, 0.5, 0.5), (0.5, 0.0, 1.0, 0.5), (0.0, 0.5, 0.5, 1.0), (0.5, 0.5, 1.0, 1.0)]
    if spec.faces == 2:
        cells = [(0.0, 0.0, 0.5, 1.0), (0.5, 0.0, 1.0, 1.0)]
    elif spec.faces == 3:
        cells = [(0.0, 0.0, 0.34, 1.0), (0.33, 0.0, 0.67, 1.0), (0.66, 0.0, 1.0, 1.0)]
    photos = [astronaut, grace, grace, astronaut]
    size = 0.22 * spec.height if spec.faces <= 2 else 0.19 * spec.height
    return [(photos[i], size, cells[i]) for i in range(spec.faces)]


# Fractions of a pass over the scene: the neutral face starts turning into the smiling one, smiles fully, starts
# turning back, and is itself again. Each fade lasts a second of the 10 s demo: long enough for the face to stay
# detected (and its track to go on) while the two photos are blended.
SMILE = (0.3, 0.4, 0.7, 0.8)


def smile_weight(spec: SceneSpec, index: int) -> float:
    """How much of the smiling photo the changing face shows in frame ``index`` (0 to 1)."""
    if not spec.expressions:
        return 0.0
    x = (index % spec.frames) / spec.frames
    begin, full, back, end = SMILE
    if x < begin or x >= end:
        return 0.0
    if x < full:
        return (x - begin) / (full - begin)
    return 1.0 if x < back else (end - x) / (end - back)


def _paste(frame: np.ndarray, photo: _Photo, x0: int, y0: int, w: int, h: int) -> None:
    """Blend the photo's sprite, at ``w`` x ``h`` with its corner at ``x0``, ``y0``, into the frame (clipped)."""
    sprite, alpha = photo.scaled(w, h)
    left, top = max(0, x0), max(0, y0)
    x1, y1 = min(frame.shape[1], x0 + w), min(frame.shape[0], y0 + h)
    if x1 <= left or y1 <= top:
        return
    target = frame[top:y1, left:x1]
    cut = (slice(top - y0, y1 - y0), slice(left - x0, x1 - x0))
    blend = np.ascontiguousarray(alpha[cut])
    target[:] = cv2.blendLinear(np.ascontiguousarray(sprite[cut]), target, blend, 1.0 - blend)


def _paste_face(frame: np.ndarray, photo: _Photo, face: Box) -> None:
    """Blend the photo so that its face fills ``face`` (same place and size as another photo's face)."""
    scale = face[2] / photo.face[2]
    x0, y0 = face[0] - round(photo.face[0] * scale), face[1] - round(photo.face[1] * scale)
    _paste(frame, photo, x0, y0, max(1, round(photo.image.shape[1] * scale)),
           max(1, round(photo.image.shape[0] * scale)))


def render(spec: SceneSpec, index: int) -> tuple[np.ndarray, list[Box]]:
    """Frame ``index`` of the scene and the true face boxes in it."""
    frame = _background(spec.width, spec.height).copy()
    boxes: list[Box] = []
    t = index / spec.fps
    grace, astronaut = _photos()
    smile = smile_weight(spec, index)
    for i, (photo, face_px, (fx0, fy0, fx1, fy1)) in enumerate(_actors(spec)):
        zoom = 1.0 + 0.2 * math.sin(2 * math.pi * t / 4.0 + i)
        scale = face_px * zoom / photo.face[2]
        sprite_w, sprite_h = photo.image.shape[1] * scale, photo.image.shape[0] * scale
        region_w = (fx1 - fx0) * spec.width - sprite_w
        region_h = (fy1 - fy0) * spec.height - sprite_h
        cx = fx0 * spec.width + max(0.0, region_w) * (0.5 + 0.45 * math.sin(2 * math.pi * t / 5.0 + 1.7 * i))
        cy = fy0 * spec.height + max(0.0, region_h) * (0.5 + 0.45 * math.cos(2 * math.pi * t / 7.0 + 0.9 * i))
        x0, y0 = round(cx), round(cy)
        w, h = max(1, round(sprite_w)), max(1, round(sprite_h))
        fx, fy, fw, fh = photo.face
        face = (x0 + round(fx * scale), y0 + round(fy * scale), round(fw * scale), round(fh * scale))
        if photo is grace and smile >= 1.0:
            _paste_face(frame, astronaut, face)
        elif photo is grace and smile > 0.0:
            smiling = frame.copy()
            _paste_face(smiling, astronaut, face)
            _paste(frame, photo, x0, y0, w, h)
            frame = cv2.addWeighted(frame, 1.0 - smile, smiling, smile, 0.0)
        else:
            _paste(frame, photo, x0, y0, w, h)
        boxes.append(face)
    return frame, boxes


def frames(spec: SceneSpec) -> Iterator[tuple[np.ndarray, list[Box]]]:
    for index in range(spec.frames):
        yield render(spec, index)


def boxes_path(video: Path) -> Path:
    return video.with_suffix(".boxes.json")


def write_video(path: Path, spec: SceneSpec) -> Path:
    """Write the scene as MP4 plus ``<name>.boxes.json`` holding the true boxes per frame."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), spec.fps, (spec.width, spec.height))
    if not writer.isOpened():
        raise RuntimeError(f"cannot write video {path}")
    truth = []
    try:
        for frame, boxes in frames(spec):
            writer.write(frame)
            truth.append(boxes)
    finally:
        writer.release()
    boxes_path(path).write_text(json.dumps({"fps": spec.fps, "size": [spec.width, spec.height],
                                            "boxes": truth}), encoding="utf-8")
    return path


def load_truth(video: Path) -> list[list[Box]]:
    return [[tuple(b) for b in frame] for frame in json.loads(boxes_path(video).read_text())["boxes"]]

