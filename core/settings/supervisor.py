"""[supervisor]: restarts, stalls and shutdown of the daemon's child processes."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from emotiond.core.settings.base import _Section


class SupervisorSettings(_Section):
    max_restarts_per_minute: Annotated[int, Field(ge=0, le=600, description="Restarts of one role "
                                                  "allowed per minute before backing off.")] = 10
    restart_backoff_max_seconds: Annotated[float, Field(ge=0.1, le=600.0, description="Cap of the "
                                                        "delay between restarts.")] = 30.0
    stall_seconds: Annotated[float, Field(ge=1.0, le=3600.0, description="A child whose loop has not "
                                          "ticked for this long is killed and restarted.")] = 30.0
    stop_timeout_seconds: Annotated[float, Field(ge=0.5, le=120.0, description="Grace time for "
                                                 "children on shutdown before SIGKILL.")] = 4.0
