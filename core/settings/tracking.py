"""[tracking]: following faces between frames and smoothing their emotions."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from emotiond.core.settings.base import _Section


class TrackingSettings(_Section):
    enabled: Annotated[bool, Field(description="Follow faces between frames: stable track ids, smoothed "
                                   "emotions, and cheap re-detection near known faces. Keeps each camera on "
                                   "one worker.")] = True
    full_scan_interval: Annotated[int, Field(ge=1, le=300, description="Scan the whole frame at least every "
                                             "this many frames; a new face is found within twice this "
                                             "many frames (within a few frames in live mode).")] = 15
    roi_margin: Annotated[float, Field(ge=0.1, le=3.0, description="Search region around a known face, as a "
                                       "fraction of its size on each side.")] = 0.35
    roi_face_px: Annotated[int, Field(ge=24, le=256, description="Known faces are re-detected at this size "
                                      "(smaller is faster, larger gives steadier boxes).")] = 40
    iou_threshold: Annotated[float, Field(ge=0.0, le=1.0, description="Least overlap for a detection to "
                                          "continue a track.")] = 0.3
    max_missed: Annotated[int, Field(ge=0, le=300, description="Frames a track may go unseen before it "
                                     "ends.")] = 3
    ema_alpha: Annotated[float, Field(gt=0.0, le=1.0, description="Weight of the newest scores in the "
                                      "smoothed emotion.")] = 0.4
    hysteresis: Annotated[float, Field(ge=0.0, le=1.0, description="Lead another label needs over the "
                                       "current smoothed label before it changes.")] = 0.1
    down_grace_seconds: Annotated[float, Field(ge=0.0, le=600.0, description="A live camera down for longer "
                                               "than this ends its open tracks; one back sooner keeps them."
                                               )] = 5.0
    reuse_stable: Annotated[bool, Field(description="A face whose box barely moved between its last two "
                                        "detections is carried into the next frame without a search, and "
                                        "searched for again in the frame after (BlazeFace: when every known "
                                        "face held still, the next frame is not detected).")] = True
    coarse_scans: Annotated[bool, Field(description="Haar: while every known face is large, most periodic full "
                                        "scans look at half resolution (a quarter of the cost); every fourth "
                                        "is at full resolution for small newcomers.")] = True
