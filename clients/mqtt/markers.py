"""The marker command topic: ``PREFIX/marker/set`` sets a history marker, as ``emotiond history mark`` does.

The payload is the label as plain text (``new sign``), or JSON ``{"label": "new sign", "camera": "lobby"}``
(no camera: every camera). Each command is answered on ``PREFIX/marker/result`` with ``{"ok": true, "marker":
{...}}`` or ``{"ok": false, "error": "..."}``. Commands are limited to ``RATE`` a second (a burst of ``BURST``);
what is over the limit is answered with an error and not written. The history store is opened at the first
command, so a bridge that never gets one never touches the database.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from emotiond.core.errors import UsageError
from emotiond.core.settings import Settings

log = logging.getLogger(__name__)
RATE = 5.0  # commands a second, sustained
BURST = 10


class MarkerCommands:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._store: Any = None
        self._tokens = float(BURST)
        self._refilled = time.monotonic()
        self.accepted = 0
        self.refused = 0

    def _allow(self, now: float) -> bool:
        self._tokens = min(float(BURST), self._tokens + (now - self._refilled) * RATE)
        self._refilled = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def handle(self, payload: bytes) -> dict[str, Any]:
        """Set the marker a command asks for; the answer to publish."""
        from sqlalchemy import exc

        from emotiond.clients.history.markers import add_marker, parse_command
        from emotiond.clients.history.store import describe_error, open_store

        if not self._allow(time.monotonic()):
            self.refused += 1
            return {"ok": False, "error": f"more than {RATE:g} marker commands a second; this one was not set"}
        try:
            label, camera = parse_command(payload)
            if self._store is None:
                self._store = open_store(self.settings)
            t = time.time()
            marker_id = add_marker(self._store, label, camera, t, "mqtt")
        except UsageError as error:
            self.refused += 1
            log.warning("marker command refused: %s", error)
            return {"ok": False, "error": str(error)}
        except exc.SQLAlchemyError as error:
            self.refused += 1
            log.warning("marker command not written: %s", describe_error(error))
            return {"ok": False, "error": f"history database: {describe_error(error)}"}
        self.accepted += 1
        log.info("marker %d set from MQTT: %s (%s)", marker_id, label, camera or "all cameras")
        return {"ok": True, "marker": {"id": marker_id, "t": t, "camera": camera, "label": label, "source": "mqtt"}}

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
