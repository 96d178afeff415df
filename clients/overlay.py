"""Drawing results onto frames: one pure function shared by the viewer and ``emotiond analyze``.

``draw_overlay(image, result, ...)`` returns a new image and never touches its input, so it can be tested
alone and reused for snapshots, annotated files and the live window alike. Boxes are drawn without
anti-aliasing in flat colours from ``EMOTION_COLORS`` so an overlay is recognisable pixel by pixel. With
``landmarks=True``, each face's keypoints (when its detector gives them) are drawn as dots of the same colour
ringed in black.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from emotiond.core.protocol import Face, Result

# BGR. Saturated colours that rarely occur in camera images, one per FER+ label.
EMOTION_COLORS: dict[str, tuple[int, int, int]] = {
    "angry": (0, 0, 255),
    "disgust": (0, 170, 0),
    "fear": (200, 0, 140),
    "happy": (0, 220, 255),
    "sad": (255, 110, 0),
    "surprise": (255, 255, 0),
    "neutral": (255, 0, 255),
    "contempt": (0, 120, 255),
}
FALLBACK_COLOR = (0, 255, 128)
BOX_THICKNESS = 2
FONT = cv2.FONT_HERSHEY_SIMPLEX
PANEL_BG = (32, 32, 32)
TEXT_COLOR = (255, 255, 255)
BAR_ROW = 11  # pixels per class row in the score chart
BAR_WIDTH = 56
BAR_LABEL_WIDTH = 30
LANDMARK_RING = (0, 0, 0)


@dataclass(frozen=True)
class Hud:
    """Numbers shown in the heads-up line at the top of the viewer."""

    camera: str
    fps: float
    latency_ms: float | None
    drops: int
    note: str = ""  # e.g. "paused"

    def text(self) -> str:
        latency = "--" if self.latency_ms is None else f"{self.latency_ms:.0f} ms"
        parts = [self.camera, f"{self.fps:4.1f} fps", f"latency {latency}", f"drops {self.drops}"]
        if self.note:
            parts.append(self.note)
        return "  |  ".join(parts)


def color_for(emotion: str) -> tuple[int, int, int]:
    return EMOTION_COLORS.get(emotion, FALLBACK_COLOR)


def _scaled_box(face: Face, scale_x: float, scale_y: float) -> tuple[int, int, int, int]:
    x, y, w, h = face.box
    return round(x * scale_x), round(y * scale_y), max(1, round(w * scale_x)), max(1, round(h * scale_y))


def _text_block(image: np.ndarray, text: str, origin: tuple[int, int], scale: float, fg: tuple[int, int, int],
                bg: tuple[int, int, int]) -> None:
    """Text on a filled background, clamped inside the image; origin is the block's top-left corner."""
    (tw, th), base = cv2.getTextSize(text, FONT, scale, 1)
    height, width = image.shape[:2]
    x = min(max(0, origin[0]), max(0, width - tw - 6))
    y = min(max(0, origin[1]), max(0, height - th - base - 6))
    cv2.rectangle(image, (x, y), (x + tw + 6, y + th + base + 6), bg, cv2.FILLED)
    cv2.putText(image, text, (x + 3, y + th + 3), FONT, scale, fg, 1, cv2.LINE_AA)


Rect = tuple[int, int, int, int]  # left, top, width, height


def panel_size(face: Face) -> tuple[int, int]:
    """Width and height of a face's score panel: one row per class."""
    return BAR_LABEL_WIDTH + BAR_WIDTH + 6, BAR_ROW * len(face.scores) + 4


PANEL_GAP = 2  # pixels kept free between two panels


def _overlaps(a: Rect, b: Rect) -> bool:
    gap = PANEL_GAP
    return (a[0] <= b[0] + b[2] + gap and b[0] <= a[0] + a[2] + gap
            and a[1] <= b[1] + b[3] + gap and b[1] <= a[1] + a[3] + gap)


def place_panels(boxes: Sequence[tuple[int, int, int, int]], sizes: Sequence[tuple[int, int]],
                 image_size: tuple[int, int]) -> list[Rect | None]:
    """Where each face's score panel goes, so that no two panels cover each other, and none covers a face's box
    where the frame has room.

    Each panel tries beside its box (right, then left), from the box's top downwards, then upwards; on a frame
    too crowded for that, any free place in the image, scanned row by row. Those places are tried clear of every
    box first, then clear of the other panels only; failing both, no panel (None) rather than one over another's
    rows."""
    width, height = image_size
    faces: list[Rect] = [tuple(box) for box in boxes]
    placed: list[Rect] = []
    out: list[Rect | None] = []
    for (x, y, w, _h), (panel_w, panel_h) in zip(faces, sizes, strict=True):
        max_left, max_top = max(0, width - panel_w), max(0, height - panel_h)
        step = max(1, BAR_ROW)
        tops = [min(max(0, y), max_top)]
        tops += [t for t in range(tops[0] + step, max_top + 1, step)] + [t for t in range(tops[0] - step, -1, -step)]
        sides = [min(max(0, left), max_left) for left in (x + w + 4, x - 4 - panel_w)]
        if x + w + 4 + panel_w > width:
            sides.reverse()
        beside = [(left, top) for top in tops for left in sides]
        spot = None
        for keep_clear in (placed + faces, placed):
            anywhere = ((left, top) for top in range(0, max_top + 1, step) for left in range(0, max_left + 1, step))
            spot = next(((left, top, panel_w, panel_h) for left, top in itertools.chain(beside, anywhere)
                         if not any(_overlaps((left, top, panel_w, panel_h), other) for other in keep_clear)), None)
            if spot is not None:
                break
        if spot is not None:
            placed.append(spot)
        out.append(spot)
    return out


def _score_chart(image: np.ndarray, face: Face, panel: Rect) -> None:
    """One bar per class, in the panel ``place_panels`` chose."""
    scores = sorted(face.scores.items(), key=lambda kv: list(EMOTION_COLORS).index(kv[0])
                    if kv[0] in EMOTION_COLORS else len(EMOTION_COLORS))
    if not scores:
        return
    left, top, panel_w, panel_h = panel
    cv2.rectangle(image, (left, top), (left + panel_w, top + panel_h), PANEL_BG, cv2.FILLED)
    for row, (label, score) in enumerate(scores):
        row_top = top + 2 + row * BAR_ROW
        cv2.putText(image, label[:3], (left + 2, row_top + BAR_ROW - 2), FONT, 0.3, TEXT_COLOR, 1, cv2.LINE_AA)
        bar = round(max(0.0, min(1.0, score)) * BAR_WIDTH)
        if bar:
            x0 = left + BAR_LABEL_WIDTH
            cv2.rectangle(image, (x0, row_top + 2), (x0 + bar, row_top + BAR_ROW - 2), color_for(label), cv2.FILLED)


def landmark_points(face: Face) -> list[tuple[float, float]]:
    """The face's keypoints (frame pixels), or none: only some detectors give them."""
    return list(face.landmarks or ())


def _landmarks(image: np.ndarray, face: Face, scale_x: float, scale_y: float, color: tuple[int, int, int]) -> None:
    radius = max(2, round(face.box[2] * scale_x / 40))
    for x, y in landmark_points(face):
        centre = (round(x * scale_x), round(y * scale_y))
        cv2.circle(image, centre, radius + 1, LANDMARK_RING, cv2.FILLED, cv2.LINE_8)
        cv2.circle(image, centre, radius, color, cv2.FILLED, cv2.LINE_8)


def draw_faces(image: np.ndarray, faces: Sequence[Face], frame_size: tuple[int, int],
               landmarks: bool = False) -> None:
    """Boxes, labels, score charts and optionally keypoints, in place. Boxes are in ``frame_size`` pixels and
    scaled to the image."""
    height, width = image.shape[:2]
    scale_x, scale_y = width / max(1, frame_size[0]), height / max(1, frame_size[1])
    boxes = [_scaled_box(face, scale_x, scale_y) for face in faces]
    for face, box in zip(faces, boxes, strict=True):
        x, y, w, h = box
        color = color_for(face.emotion)
        cv2.rectangle(image, (x, y), (x + w - 1, y + h - 1), color, BOX_THICKNESS, cv2.LINE_8)
        if landmarks:
            _landmarks(image, face, scale_x, scale_y, color)
    panels = place_panels(boxes, [panel_size(face) for face in faces], (width, height))
    for face, panel in zip(faces, panels, strict=True):
        if panel is not None and face.scores:
            _score_chart(image, face, panel)
    for face, (x, y, _w, _h) in zip(faces, boxes, strict=True):
        color = color_for(face.emotion)
        label = f"{face.emotion} {face.confidence:.2f}"
        (_tw, th), base = cv2.getTextSize(label, FONT, 0.5, 1)
        _text_block(image, label, (x, y - th - base - 6 - BOX_THICKNESS), 0.5, (0, 0, 0), color)


def draw_banner(image: np.ndarray, text: str) -> None:
    """Large centred text, in place (e.g. "waiting for daemon")."""
    (tw, th), base = cv2.getTextSize(text, FONT, 0.9, 2)
    height, width = image.shape[:2]
    x, y = max(0, (width - tw) // 2), max(th, (height + th) // 2)
    cv2.rectangle(image, (x - 10, y - th - 10), (x + tw + 10, y + base + 10), PANEL_BG, cv2.FILLED)
    cv2.putText(image, text, (x, y), FONT, 0.9, TEXT_COLOR, 2, cv2.LINE_AA)


def draw_overlay(image: np.ndarray, result: Result | None, *, hud: Hud | None = None, message: str = "",
                 banner: str = "", landmarks: bool = False) -> np.ndarray:
    """A copy of ``image`` (BGR or grey) with the result's faces (and their keypoints with ``landmarks``), the
    HUD, the message line and a banner."""
    canvas = image.copy() if image.ndim == 3 and image.shape[2] == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if result is not None:
        draw_faces(canvas, result.faces, result.frame_size, landmarks)
    if hud is not None:
        _text_block(canvas, hud.text(), (0, 0), 0.5, TEXT_COLOR, PANEL_BG)
    if message:
        (_tw, th), base = cv2.getTextSize(message, FONT, 0.6, 1)
        _text_block(canvas, message, (0, canvas.shape[0] - th - base - 6), 0.6, TEXT_COLOR, PANEL_BG)
    if banner:
        draw_banner(canvas, banner)
    return canvas


def blank_canvas(size: tuple[int, int] = (640, 480)) -> np.ndarray:
    """A dark frame (width, height) to draw banners on while no frames arrive."""
    return np.full((size[1], size[0], 3), 16, np.uint8)
