"""The detectors' hard set: faces turned the way heads turn in front of a webcam, small faces, and images with
no face at all, built in code from photos shipped in packages we already depend on (Grace Hopper from
matplotlib, the astronaut and the face-free images from scikit-image and scikit-learn).

Every image is a pure function of its parameters, so the true face boxes are known exactly: a face's box is
the box of the upright face, turned with it about its centre (same centre, same size). Used by
tests/test_detectors.py and benchmarks/bench_detectors.py.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from emotiond.benchmarks.scoring import MATCH_IOU
from emotiond.capture import synthetic
from emotiond.workers.tracking import iou

Box = tuple[int, int, int, int]
WIDTH, HEIGHT = 640, 480
ROTATIONS = (-30.0, -25.0, -20.0, 20.0, 25.0, 30.0)
SMALL_WIDTHS = (50, 55, 60)
FACE_FREE = ("coffee", "chelsea", "rocket", "brick", "grass", "gravel", "china", "flower", "coins", "moon")


@dataclass(frozen=True)
class HardImage:
    name: str
    kind: str  # "rotated", "small" or "none"
    pixels: np.ndarray  # BGR, HEIGHT x WIDTH
    boxes: tuple[Box, ...]
    rolls: tuple[float, ...]  # per face, degrees the face leans clockwise on screen
    recipe: tuple | None = None  # place_face's arguments after the frame, for the upright twin


def upright_twin(image: HardImage) -> np.ndarray:
    """The same frame with its face upright (same photo, size and place): what the classifier should agree with."""
    if image.recipe is None:
        raise ValueError(f"{image.name} has no face to set upright")
    photo, mirrored, face_px, centre, _angle, backdrop = image.recipe
    frame = _backdrop(backdrop).copy()
    place_face(frame, photo, mirrored, face_px, centre, 0.0)
    return frame


@functools.cache
def _face_free(name: str) -> np.ndarray:
    """A face-free photo or texture, cropped to 4:3 and resized to WIDTH x HEIGHT (BGR)."""
    if name in ("china", "flower"):
        import sklearn.datasets

        rgb = sklearn.datasets.load_sample_image(f"{name}.jpg")
    else:
        import skimage.data

        rgb = getattr(skimage.data, name)()
    image = cv2.cvtColor(rgb, cv2.COLOR_GRAY2BGR) if rgb.ndim == 2 else cv2.cvtColor(rgb[..., :3], cv2.COLOR_RGB2BGR)
    height, width = image.shape[:2]
    crop_w, crop_h = min(width, round(height * 4 / 3)), min(height, round(width * 3 / 4))
    x0, y0 = (width - crop_w) // 2, (height - crop_h) // 2
    return cv2.resize(image[y0: y0 + crop_h, x0: x0 + crop_w], (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)


def _backdrop(index: int) -> np.ndarray:
    """Blurred scenes behind the faces, varied per image."""
    name = ("coffee", "brick", "china", "grass")[index % 4]
    return cv2.GaussianBlur(_face_free(name), (0, 0), 5)


def place_face(frame: np.ndarray, photo_index: int, mirrored: bool, face_px: float, centre: tuple[float, float],
               angle: float) -> tuple[Box, float]:
    """Paste a face photo into ``frame`` (in place) with its face ``face_px`` wide, centred at ``centre`` and
    turned ``angle`` degrees counter-clockwise on screen. Returns the true box and the roll (-angle)."""
    photo = synthetic._photos()[photo_index]
    sprite, alpha = photo.image, photo.alpha
    fx, fy, fw, fh = photo.face
    if mirrored:
        sprite, alpha = sprite[:, ::-1], alpha[:, ::-1]
        fx = sprite.shape[1] - fx - fw
    scale = face_px / fw
    shrunk = (max(1, round(sprite.shape[1] * scale)), max(1, round(sprite.shape[0] * scale)))
    sprite = cv2.resize(np.ascontiguousarray(sprite), shrunk, interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(np.ascontiguousarray(alpha), shrunk, interpolation=cv2.INTER_AREA)
    face_centre = ((fx + fw / 2) * shrunk[0] / photo.image.shape[1], (fy + fh / 2) * shrunk[1] / photo.image.shape[0])
    matrix = cv2.getRotationMatrix2D(face_centre, angle, 1.0)
    matrix[:, 2] += (centre[0] - face_centre[0], centre[1] - face_centre[1])
    size = (frame.shape[1], frame.shape[0])
    warped = cv2.warpAffine(sprite, matrix, size, flags=cv2.INTER_LINEAR)
    weight = cv2.warpAffine(alpha, matrix, size, flags=cv2.INTER_LINEAR)[..., None]
    frame[:] = (warped * weight + frame * (1.0 - weight)).astype(np.uint8)
    side_w, side_h = fw * scale, fh * scale
    box = (round(centre[0] - side_w / 2), round(centre[1] - side_h / 2), round(side_w), round(side_h))
    return box, -angle


def _photo_name(photo: int, mirrored: bool) -> str:
    return ("grace", "astronaut")[photo] + ("-mirrored" if mirrored else "")


def rotated_faces() -> Iterator[HardImage]:
    """Each photo, as shot and mirrored, turned by each of ROTATIONS, at two sizes."""
    index = 0
    for photo in (0, 1):
        for mirrored in (False, True):
            for angle in ROTATIONS:
                for face_px in (110.0, 170.0):
                    frame = _backdrop(index).copy()
                    centre = (WIDTH * (0.35 + 0.3 * ((index * 7) % 5) / 4), HEIGHT * (0.42 + 0.16 * (index % 3) / 2))
                    box, roll = place_face(frame, photo, mirrored, face_px, centre, angle)
                    name = f"rotated-{_photo_name(photo, mirrored)}-{angle:+.0f}-{face_px:.0f}px"
                    yield HardImage(name, "rotated", frame, (box,), (roll,),
                                    (photo, mirrored, face_px, centre, angle, index))
                    index += 1


def small_faces() -> Iterator[HardImage]:
    """Each photo, as shot and mirrored, SMALL_WIDTHS wide, in two places, slightly tilted like a real head."""
    index = 0
    for photo in (0, 1):
        for mirrored in (False, True):
            for face_px in SMALL_WIDTHS:
                for place in (0, 1):
                    frame = _backdrop(index + 1).copy()
                    centre = (WIDTH * (0.2 + 0.6 * place), HEIGHT * (0.3 + 0.4 * ((index // 2) % 2)))
                    angle = (-6.0, 0.0, 6.0)[index % 3]
                    box, roll = place_face(frame, photo, mirrored, face_px, centre, angle)
                    name = f"small-{_photo_name(photo, mirrored)}-{face_px}px-{place}"
                    yield HardImage(name, "small", frame, (box,), (roll,))
                    index += 1


def face_free() -> Iterator[HardImage]:
    for name in FACE_FREE:
        yield HardImage(f"none-{name}", "none", _face_free(name).copy(), (), ())


def hard_set() -> list[HardImage]:
    return [*rotated_faces(), *small_faces(), *face_free()]


# ---------------------------------------------------------------- tilting heads (for tracking)

def tilt_angle(index: int, fps: float = 30.0) -> float:
    """A head that rolls slowly from upright to 30 degrees one way, holds, and the same the other way: 0 for
    the first second, then 30 * sin over a 6-second period, clipped to +-30 (held for about a second)."""
    t = index / fps - 1.0
    if t <= 0:
        return 0.0
    return float(np.clip(36.0 * math.sin(2 * math.pi * t / 6.0), -30.0, 30.0))


def tilting_heads(index: int, faces: int = 2) -> tuple[np.ndarray, list[Box], list[float]]:
    """Frame ``index`` of a video of ``faces`` (1 or 2) heads rolling by up to +-30 degrees while drifting
    slowly: the frame, the true boxes and each face's roll."""
    frame = cv2.GaussianBlur(_face_free("coffee"), (0, 0), 9)
    boxes, rolls = [], []
    angle = tilt_angle(index)
    for face in range(faces):
        drift = 30 * math.sin(2 * math.pi * index / 30.0 / 7.0 + face)
        centre = (WIDTH * (0.3 + 0.4 * face) + drift, HEIGHT * 0.5 + drift / 2) if faces > 1 else \
            (WIDTH * 0.5 + drift, HEIGHT * 0.5)
        box, roll = place_face(frame, face % 2, False, 120.0, centre, angle if face % 2 == 0 else -angle)
        boxes.append(box)
        rolls.append(roll)
    return frame, boxes, rolls


# ---------------------------------------------------------------- scoring

@dataclass
class Score:
    faces: int = 0
    found: int = 0
    false_boxes: int = 0  # boxes overlapping no true face
    images: int = 0

    @property
    def recall(self) -> float:
        return self.found / self.faces if self.faces else 1.0

    def add(self, truth: Sequence[Box], boxes: np.ndarray) -> None:
        self.images += 1
        self.faces += len(truth)
        self.found += sum(any(iou(true, box) >= MATCH_IOU for box in boxes) for true in truth)
        self.false_boxes += sum(all(iou(true, box) < MATCH_IOU for true in truth) for box in boxes)


def score(images: Sequence[HardImage], detect: Callable[[np.ndarray], np.ndarray]) -> dict[str, Score]:
    """Recall and false boxes per kind of image, for ``detect(pixels) -> N x 4 boxes``."""
    scores: dict[str, Score] = {}
    for image in images:
        scores.setdefault(image.kind, Score()).add(image.boxes, detect(image.pixels))
    return scores
