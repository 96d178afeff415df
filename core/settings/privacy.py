"""[privacy]: what of a face may leave a worker (pixels, boxes, or only aggregates), how long anything is kept,
and who runs the deployment; plus the polygon type of each source's privacy ``masks``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from emotiond.core.settings.base import _Section

MAX_POLYGON_POINTS = 64
MAX_MASKS = 32
_MIN_AREA = 1e-6  # of the frame: a polygon smaller than this covers no pixel and is surely a typo


def _segments_cross(p1: tuple[float, float], p2: tuple[float, float], q1: tuple[float, float],
                    q2: tuple[float, float]) -> bool:
    """Proper crossing of two segments (shared end points do not count)."""
    def side(a: tuple[float, float], b: tuple[float, float], c: tuple[float, float]) -> float:
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])

    d1, d2 = side(q1, q2, p1), side(q1, q2, p2)
    d3, d4 = side(p1, p2, q1), side(p1, p2, q2)
    return d1 * d2 < 0 and d3 * d4 < 0


def check_polygon(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """A mask polygon: 3 to 64 points, each ``[x, y]`` within the frame (0..1, frame-relative), enclosing some
    area and not crossing itself (a crossed outline would leave parts of the intended area unmasked)."""
    if len(points) < 3:
        raise ValueError(f"a mask polygon needs at least 3 points [x, y], got {len(points)}")
    outside = [p for p in points if not (0.0 <= p[0] <= 1.0 and 0.0 <= p[1] <= 1.0)]
    if outside:
        x, y = outside[0]
        raise ValueError(f"mask point [{x:g}, {y:g}] is outside the frame: coordinates are fractions of its "
                         "width and height, 0 to 1")
    area = 0.5 * abs(sum(points[i][0] * points[i - 1][1] - points[i - 1][0] * points[i][1]
                         for i in range(len(points))))
    if area < _MIN_AREA:
        raise ValueError("mask polygon encloses no area (its points are repeated or on one line)")
    edges = [(points[i], points[(i + 1) % len(points)]) for i in range(len(points))]
    for i, (a1, a2) in enumerate(edges):
        for b1, b2 in edges[i + 2:]:
            if _segments_cross(a1, a2, b1, b2):
                raise ValueError("mask polygon crosses itself: list its points in order around the outline")
    return points


Point = tuple[Annotated[float, Field(allow_inf_nan=False)], Annotated[float, Field(allow_inf_nan=False)]]
Polygon = Annotated[list[Point], Field(max_length=MAX_POLYGON_POINTS), AfterValidator(check_polygon)]


class PrivacySettings(_Section):
    """Privacy by design: face redaction in every image, aggregates-only results, retention and the notice."""

    faces: Annotated[Literal["show", "solid", "blur", "mosaic"], Field(title="Faces in images", description=(
        "What every image that leaves a worker (frame.<camera>, the viewer, the console's streams, MQTT "
        "snapshots, analyze --out, the upload's annotated image, the Python API) shows of a face: 'show' (as "
        "filmed), 'solid' (filled black, the strongest), 'blur' or 'mosaic'. Anything but 'show' also withholds "
        "a frame whose detection failed, timed out or was skipped."))] = "show"
    mask_scale: Annotated[float, Field(ge=1.0, le=3.0, title="Face mask scale", description=(
        "The redaction covers each face box grown by this factor about its centre (hair, ears, chin)."))] = 1.3
    hold_frames: Annotated[int, Field(ge=0, le=300, title="Mask hold (frames)", description=(
        "Frames a face's redaction stays on its track's last box after the detector missed it, so a face is "
        "not shown while the detector blinks."))] = 5
    publish: Annotated[Literal["faces", "aggregates"], Field(title="Results published", description=(
        "'faces': a result per face (box, track id, scores). 'aggregates': nothing per face leaves the worker "
        "(no boxes, track ids, per-face scores or images); per camera and window, face counts and emotion "
        "shares."))] = "faces"
    window_seconds: Annotated[float, Field(ge=1.0, le=86_400.0, title="Aggregate window (s)", description=(
        "Length of each aggregates window."))] = 60.0
    min_group: Annotated[int, Field(ge=1, le=10_000, title="Least group", description=(
        "A window with fewer faces than this is marked suppressed (not zero) in aggregates mode."))] = 5
    retention_days: Annotated[int | None, Field(ge=1, le=36_500, title="Retention (days)", description=(
        "Longest anything about a face is kept: the logger's files, the history's samples and events, the "
        "console's recent events. Each store may keep less, never more. Unset: each store's own limit."))] = None
    operator: Annotated[str, Field(max_length=200, title="Operator", description=(
        "Who runs this deployment, as shown by `emotiond privacy notice` and the console's /privacy page."))] = ""
    contact: Annotated[str, Field(max_length=200, title="Contact", description=(
        "Whom people filmed may contact (an address, e-mail or phone), shown in the notice."))] = ""
    purpose: Annotated[str, Field(max_length=1000, title="Purpose", description=(
        "Why emotions are inferred here, shown in the notice."))] = ""

    @property
    def redacting(self) -> bool:
        """Whether faces are hidden in images (and frames without a detection are withheld)."""
        return self.faces != "show"
