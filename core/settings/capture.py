"""[capture]: how frames are read, paced, reconnected and handed to workers."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from emotiond.core.settings.base import _Section


class CaptureSettings(_Section):
    file_queue_frames: Annotated[int, Field(ge=1, le=1024, description="Frames read ahead per file "
                                            "source; reading blocks when full so nothing is lost.")] = 8
    reconnect_initial_seconds: Annotated[float, Field(ge=0.05, le=60.0, description="First delay "
                                                      "before reopening a failed live source.")] = 0.5
    reconnect_max_seconds: Annotated[float, Field(ge=0.1, le=600.0, description="Backoff cap for "
                                                  "reopening a failed live source.")] = 10.0
    worker_timeout_seconds: Annotated[float, Field(ge=0.5, le=120.0, description="A worker silent this "
                                                   "long is presumed dead; its frames are re-sent.")] = 3.0
    credits_per_worker: Annotated[int, Field(ge=1, le=64, description="Frames a worker may hold at "
                                             "once; more lets it batch across frames.")] = 2
    stall_seconds: Annotated[float, Field(ge=1.0, le=300.0, description="A live source that delivers no frame "
                                          "for this long is marked down (stalled) and reopened, however its "
                                          "decoder behaves.")] = 5.0
    fair_share: Annotated[bool, Field(description="Under overload, hold back a live camera served well above the "
                                      "least-served one, so every camera drops about the same share of its "
                                      "frames whichever worker it shares; off serves each worker's cameras as "
                                      "fast as that worker goes (more frames in all, unevenly).")] = True
