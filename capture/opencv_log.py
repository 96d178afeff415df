"""OpenCV, and the FFmpeg inside it, write warnings straight to file descriptor 2, bypassing ``logging``.

A camera that will not open makes each retry print several such lines. ``route_opencv_output`` points fd 2 of
the capture process at a pipe read by a thread that logs each line through the ``emotiond.opencv`` logger at
the line's own level (``[ WARN:...`` is WARNING, FFmpeg's ``[tcp @ 0x...]`` lines WARNING); ``[logging]
opencv`` is that logger's level, so the user chooses what shows. A message already logged once is logged again
only at DEBUG, so a retry loop does not repeat it. Python's own output keeps the real stderr.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading

log = logging.getLogger("emotiond.opencv")
_OPENCV_LEVELS = {"[ WARN": logging.WARNING, "[ERROR": logging.ERROR, "[ INFO": logging.INFO,
                  "[DEBUG": logging.DEBUG, "[FATAL": logging.CRITICAL, "[VERBO": logging.DEBUG}
_FFMPEG_LINE = re.compile(r"^\[[\w.,:-]+ @ 0x[0-9a-f]+\] ")
_VOLATILE = re.compile(r"@\d+(\.\d+)?|0x[0-9a-f]+")  # times and addresses: the same message differs only there
MAX_REMEMBERED = 512
_routed = False


def line_level(line: str, previous: int) -> int:
    """The level of one line of OpenCV output; a line without a tag continues the message before it."""
    level = _OPENCV_LEVELS.get(line[:6])
    if level is not None:
        return level
    if _FFMPEG_LINE.match(line):
        return logging.WARNING
    return previous


class OutputLogger:
    """Turns OpenCV's raw lines into log records, each distinct message once above DEBUG."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._level = logging.WARNING

    def line(self, text: str) -> None:
        text = text.rstrip()
        if not text.strip():
            return
        self._level = line_level(text, self._level)
        key = _VOLATILE.sub("", text)
        if key in self._seen:
            log.debug("%s", text)
            return
        if len(self._seen) >= MAX_REMEMBERED:
            self._seen.clear()
        self._seen.add(key)
        log.log(self._level, "%s", text)


def route_opencv_output(level: str) -> None:
    """Route fd 2 of this process through ``emotiond.opencv`` at ``level`` (once per process)."""
    global _routed
    log.setLevel(level)
    if _routed:
        return
    _routed = True
    read_end, write_end = os.pipe()
    real_stderr = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")
    sys.stderr.flush()
    os.dup2(write_end, 2)
    os.close(write_end)
    sys.stderr = real_stderr
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            handler.setStream(real_stderr)
    threading.Thread(target=_pump, args=(read_end, OutputLogger()), name="opencv-log", daemon=True).start()


def _pump(read_end: int, sink: OutputLogger) -> None:
    pending = b""
    while True:
        try:
            chunk = os.read(read_end, 65536)
        except OSError:
            return
        if not chunk:
            return
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            sink.line(line.decode("utf-8", "replace"))
