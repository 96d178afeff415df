"""[workers]: the inference worker processes."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from emotiond.core.settings.base import _Section


class WorkerSettings(_Section):
    count: Annotated[int, Field(ge=0, le=256, description="Inference worker processes; 0 means one per "
                                "core; with tracking, one per camera up to two per core.")] = 0
    heartbeat_seconds: Annotated[float, Field(ge=0.1, le=60.0, description="Interval of worker "
                                              "liveness messages.")] = 1.0
    local: Annotated[bool, Field(description="`emotiond run` starts its own workers; false when every worker "
                                 "runs elsewhere as `emotiond worker` (other hosts, containers, pods).")] = True
