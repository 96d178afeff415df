"""[bus]: the ZeroMQ endpoints, encodings and limits between the daemon's processes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from emotiond.core.settings.base import _Section, default_runtime_dir


class BusSettings(_Section):
    runtime_dir: Annotated[Path, Field(description="Folder for ipc sockets and metric files.")] = Field(
        default_factory=default_runtime_dir)
    frames_endpoint: Annotated[str, Field(description="Capture's ROUTER; workers connect here for work. "
                                          "Empty means ipc in runtime_dir.")] = ""
    results_in_endpoint: Annotated[str, Field(description="Proxy XSUB; workers and capture publish "
                                              "here. Empty means ipc in runtime_dir.")] = ""
    results_endpoint: Annotated[str, Field(description="Proxy XPUB; subscribers connect here. Empty "
                                           "means ipc in runtime_dir.")] = ""
    frame_encoding: Annotated[Literal["raw", "jpeg"], Field(description="How frames travel: raw pixels "
                                                             "(zero-copy, local) or JPEG (for tcp).")] = "raw"
    jpeg_quality: Annotated[int, Field(ge=10, le=100, description="JPEG quality when frame_encoding is "
                                       "jpeg.")] = 85
    high_water_mark: Annotated[int, Field(ge=1, le=100_000, description="Messages queued per socket "
                                          "before PUB drops or others block.")] = 64
    max_message_bytes: Annotated[int, Field(ge=1024, le=1 << 30, description="Larger incoming messages "
                                            "are refused by ZeroMQ (ZMQ_MAXMSGSIZE).")] = 64 << 20
    max_frame_pixels: Annotated[int, Field(ge=1, le=100_000_000, description="Frames above this many "
                                           "pixels are rejected at decode.")] = 4096 * 4096
