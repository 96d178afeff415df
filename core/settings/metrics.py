"""[metrics]: the Prometheus /metrics endpoint."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from emotiond.core.settings.base import _Section


class MetricsSettings(_Section):
    enabled: Annotated[bool, Field(description="Serve /metrics.")] = True
    host: Annotated[str, Field(min_length=1, description="Bind address of /metrics.")] = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535, description="Port of /metrics (0 picks a free one).")] = 9108
