"""Secrets out of everything shown: passwords in camera URLs, wherever a URL is printed, logged or published."""

from __future__ import annotations

import logging
import re

MASK = "***"
# scheme://user:password@ in any text: a URL the user configured, or one an error message repeats.
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@?#]*:)(?P<secret>[^\s/?#]*)@")
# ?password=... and the like, as some HTTP cameras take them.
_SECRET_QUERY = re.compile(r"(?P<head>[?&](?:password|passwd|pwd|pass|token|key|secret|auth)=)(?P<secret>[^&#\s]*)",
                           re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with every password in a URL replaced by ``***`` (``rtsp://viewer:***@host/...``).

    Used wherever a source is shown: logs, status messages, errors, ``config show``, the web console, MQTT.
    """
    text = _USERINFO.sub(lambda m: f"{m['head']}{MASK}@" if m["secret"] else m[0], text)
    return _SECRET_QUERY.sub(lambda m: f"{m['head']}{MASK}" if m["secret"] else m[0], text)


class RedactingFilter(logging.Filter):
    """Masks URL passwords in every log record, including messages OpenCV or FFmpeg errors repeat."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
