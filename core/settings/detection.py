"""[detection]: the face detector and its parameters."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from emotiond.core.settings.base import _Section


class DetectionSettings(_Section):
    backend: Annotated[Literal["haar", "blazeface"], Field(
        description="Face detector: 'haar' (OpenCV's frontal cascade) or 'blazeface' (MediaPipe's BlazeFace "
                    "on LiteRT: finds tilted and small faces and gives 6 landmarks per face; its models come "
                    "with `emotiond models fetch`).")] = "haar"
    blazeface_model: Annotated[Literal["full", "short"], Field(
        description="BlazeFace model: 'full' range (192x192 input, faces up to about 5 m) or 'short' range "
                    "(128x128 input, faces within about 2 m).")] = "full"
    min_score: Annotated[float | None, Field(ge=0.0, le=1.0, description="BlazeFace: least face score to "
                                             "keep; unset uses the model's published threshold (0.6 full "
                                             "range, 0.5 short range).")] = None
    haar_rotations: Annotated[list[Annotated[float, Field(gt=0.0, le=60.0)]], Field(
        max_length=4, description="Haar with tracking: when a tracked face is lost, its region is searched "
                                  "again turned by each of these angles (degrees, both ways) before the "
                                  "face counts as gone. Empty turns this off.")] = Field(
        default_factory=lambda: [15.0, 30.0])
    scale_factor: Annotated[float, Field(gt=1.0, le=2.0, description="Haar pyramid step.")] = 1.1
    min_neighbors: Annotated[int, Field(ge=0, le=50, description="Haar neighbours needed to keep a "
                                        "face.")] = 5
    region_min_neighbors: Annotated[int, Field(ge=0, le=50, description="Haar with tracking: neighbours needed "
                                               "to keep a face in the small region around a known face, where "
                                               "one is expected (fewer than min_neighbors: a face seen at 40 px "
                                               "gathers fewer).")] = 3
    min_size: Annotated[int, Field(ge=8, le=4096, description="Smallest face side in full-frame "
                                   "pixels.")] = 40
    downscale: Annotated[float, Field(gt=0.0, le=1.0, description="Resize factor applied before full-frame "
                                      "detection; boxes are mapped back to full frame. Faces smaller than "
                                      "24 / downscale pixels are not found.")] = 1.0
    max_scan_width: Annotated[int, Field(ge=0, le=16384, description="Haar: full-frame scans look at the frame "
                                         "shrunk to at most this many pixels wide (with downscale, the smaller "
                                         "scale wins), so their cost stops growing with the camera's resolution; "
                                         "boxes are mapped back, and known faces are still re-detected at full "
                                         "resolution. A scan then misses faces narrower than 24 x frame width / "
                                         "this (72 px at 1920 wide). 0 scans at full resolution.")] = 640
    threads: Annotated[int, Field(ge=0, le=64, description="OpenCV threads per worker; 0 divides the "
                                  "cores among workers.")] = 0
