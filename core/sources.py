"""What a source URL means, without opening it: its kind, whether it is live, and the one source error type.

Shared by capture (which opens sources) and the workers (which pick live or file handling per camera).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from emotiond.core.metrics import SOURCE_FAILURE_REASONS
from emotiond.core.redact import redact
from emotiond.core.secrets import SecretError, read_secret
from emotiond.core.settings import SourceSettings

SourceKind = Literal["demo", "camera", "stream", "file", "folder"]
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


class SourceError(Exception):
    """A source that cannot be opened or read. ``reason`` is a bounded metric label, one of
    ``metrics.SOURCE_FAILURE_REASONS`` (exported at 0 from start, so an undeclared one is refused)."""

    def __init__(self, reason: str, message: str):
        if reason not in SOURCE_FAILURE_REASONS:
            raise ValueError(f"undeclared SourceError reason {reason!r}: add it to metrics.SOURCE_FAILURE_REASONS")
        super().__init__(message)
        self.reason = reason


def kind_of(url: str) -> SourceKind:
    """Classify a source URL without opening it."""
    if url == "demo":
        return "demo"
    if url.isdigit() or re.fullmatch(r"/dev/video\d+", url):
        return "camera"
    scheme = _SCHEME.match(url)
    if scheme:
        if scheme.group(1).lower() in STREAM_SCHEMES:
            return "stream"
        if scheme.group(1).lower() == "file":
            return "folder" if Path(url[7:]).is_dir() else "file"
        raise SourceError("unsupported", f"unsupported URL scheme {scheme.group(1)!r} in {redact(url)!r} "
                          f"(supported: {', '.join(STREAM_SCHEMES)})")
    return "folder" if Path(url).is_dir() else "file"


def is_live_kind(kind: SourceKind) -> bool:
    return kind in ("camera", "stream")


def source_is_live(source: SourceSettings) -> bool:
    """Live sources keep only the newest frame; files and folders are read whole unless paced in real time."""
    if source.realtime:
        return True
    if source.mode != "auto":
        return source.mode == "live"
    try:
        return is_live_kind(kind_of(source.url))
    except SourceError:
        return False


# ---------------------------------------------------------------- credentials

def read_source_password(source: SourceSettings) -> str | None:
    """The password of ``source`` from its ``password_file`` (first line) or ``password_env``, if either is set."""
    try:
        return read_secret(source.password_file, source.password_env, env_required=True)
    except SecretError as exc:
        raise SourceError("unreadable", f"camera {source.name}: {exc}") from None


def connect_url(source: SourceSettings) -> str:
    """The URL to open: the configured one, with the password from ``password_file``/``password_env`` put in.

    Only the capture process calls this, at each open, so the secret never enters settings handed to other
    processes or anything printed.
    """
    password = read_source_password(source)
    if password is None:
        return source.url
    from urllib.parse import quote, urlsplit, urlunsplit

    parts = urlsplit(source.url)
    host = parts.netloc.rsplit("@", 1)[-1]
    user = parts.netloc.rsplit("@", 1)[0] if "@" in parts.netloc else ""
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}"))


def ffmpeg_capture_options(source: SourceSettings) -> str:
    """OpenCV's ``OPENCV_FFMPEG_CAPTURE_OPTIONS`` for a stream: the RTSP transport, then the source's own
    ``ffmpeg_options`` (``key;value`` pairs joined by ``|``)."""
    options: dict[str, str] = {}
    if source.url.lower().startswith(("rtsp://", "rtsps://")):
        options["rtsp_transport"] = source.rtsp_transport
    options.update(source.ffmpeg_options)
    return "|".join(f"{key};{value}" for key, value in options.items())
