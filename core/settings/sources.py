"""[[sources]]: the frame sources (cameras, files, folders, streams, the demo) and the --source flag."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SerializationInfo, field_serializer, field_validator, model_validator

from emotiond.core.protocol import CAMERA_NAME_PATTERN
from emotiond.core.redact import redact
from emotiond.core.settings.base import ENV_NAME_PATTERN, MASK_SECRETS, _Section
from emotiond.core.settings.privacy import MAX_MASKS, Polygon


class SourceSettings(_Section):
    """One frame source: a camera, file, image folder, network stream or the demo."""

    name: Annotated[str, Field(pattern=CAMERA_NAME_PATTERN, description="Camera name used in topics, "
                               "results and metric labels.")]
    url: Annotated[str, Field(min_length=1, max_length=4096, description="Webcam index or /dev/videoN, "
                              "video file, image folder, rtsp:// or http(s):// URL, or 'demo'.")]
    mode: Annotated[Literal["auto", "live", "file"], Field(
        description="'live' keeps only the newest frame and drops stale ones; 'file' processes every "
                    "frame; 'auto' picks live for cameras and streams, file for files and folders.")] = "auto"
    realtime: Annotated[bool, Field(description="Pace a file at its own fps, then behave like live.")] = False
    loop: Annotated[bool, Field(description="Restart a file or folder at its end instead of finishing.")] = False
    fps: Annotated[float, Field(ge=0.0, le=240.0, description="Pacing rate for folders and realtime "
                                "files; 0 uses the file's own rate (30 when unknown).")] = 0.0
    rtsp_transport: Annotated[Literal["tcp", "udp"], Field(
        description="How an rtsp:// camera sends its video: 'tcp' (interleaved in the RTSP connection; passes "
                    "NAT and firewalls) or 'udp' (lower latency on a clean LAN; some NVRs need it).")] = "tcp"
    ffmpeg_options: Annotated[dict[str, str], Field(
        max_length=32, description="Further FFmpeg input options for a stream, as OpenCV passes them "
                                   "(OPENCV_FFMPEG_CAPTURE_OPTIONS), e.g. {max_delay = \"500000\"}.")] = Field(
        default_factory=dict)
    password_file: Annotated[Path | None, Field(description="File whose first line is the camera's password, "
                                                "put into the URL's user:password@ at each connect; the URL "
                                                "then names only the user.")] = None
    password_env: Annotated[str | None, Field(pattern=ENV_NAME_PATTERN, description="Environment "
                                              "variable holding the camera's password (when password_file is "
                                              "unset).")] = None
    masks: Annotated[list[Polygon] | None, Field(
        max_length=MAX_MASKS, description="Privacy masks: polygons of [x, y] points as fractions of the frame's "
                                          "width and height (0 to 1). Their pixels are filled black in capture, "
                                          "so nothing inside is detected and every image shows them filled, "
                                          "whatever [privacy] faces says.")] = None

    @field_validator("ffmpeg_options")
    @classmethod
    def _ffmpeg_options_are_plain(cls, options: dict[str, str]) -> dict[str, str]:
        for key, value in options.items():
            if not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", key):
                raise ValueError(f"ffmpeg option name {key!r} must be lower-case letters, digits and _")
            if not value or len(value) > 256 or any(c in value for c in ";|\n\r"):
                raise ValueError(f"ffmpeg option {key}: the value must be 1-256 characters without ; or |")
            if key == "rtsp_transport":
                raise ValueError("set rtsp_transport as its own key, not in ffmpeg_options")
        return options

    @model_validator(mode="after")
    def _password_goes_with_a_user(self) -> SourceSettings:
        from urllib.parse import urlsplit

        if self.password_file is None and self.password_env is None:
            return self
        if self.password_file is not None and self.password_env is not None:
            raise ValueError("give password_file or password_env, not both")
        try:
            parts = urlsplit(self.url)
            has_user, has_password = parts.username, parts.password
        except ValueError:
            has_user = has_password = None
        if "://" not in self.url or not has_user:
            raise ValueError("password_file / password_env need a URL with a user name (rtsp://USER@host/...)")
        if has_password is not None:
            raise ValueError("the URL already holds a password; remove it or drop password_file / password_env")
        return self

    @field_serializer("url", when_used="json")
    def _url_for_child_processes(self, url: str, info: SerializationInfo) -> str:
        """Child processes get the URL as configured; ``config show`` prints it with its password masked."""
        if (info.context or {}).get(MASK_SECRETS):
            return redact(url)
        return url



_NAMED_SOURCE = re.compile(rf"^(?P<name>{CAMERA_NAME_PATTERN[1:-1]})=(?P<url>.+)$")


def parse_source_flag(text: str, index: int) -> dict[str, str]:
    """``--source [NAME=]URL``; unnamed sources are called cam0, cam1, ... in order."""
    match = _NAMED_SOURCE.match(text)
    if match and "://" not in match.group("name"):
        return {"name": match.group("name"), "url": match.group("url")}
    return {"name": f"cam{index}", "url": text}
