"""[logging]: log levels of emotiond and of OpenCV."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from emotiond.core.settings.base import _Section


class LoggingSettings(_Section):
    level: Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR"], Field(description="Log level.")] = "INFO"
    opencv: Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], Field(
        description="Least level of OpenCV's and FFmpeg's own messages (camera and stream opening) that the "
                    "capture process logs, each distinct message once (again only at DEBUG).")] = "ERROR"
