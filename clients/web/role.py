"""The web console as a child of ``emotiond run`` (``[web] enabled = true``).

Kept free of heavy imports: the command line imports this module to list the role, and the spawned child
imports aiohttp and OpenCV only once it runs.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from emotiond.core.errors import UsageError
from emotiond.core.lifecycle import Lifecycle
from emotiond.core.metrics import ENV_DIR
from emotiond.core.settings import Settings

log = logging.getLogger(__name__)


PORT_CHANGE = "--port (0: any free port) or [web] port"


def enabled(settings: Settings) -> bool:
    return settings.web.enabled


def preflight(settings: Settings) -> None:
    """``emotiond run``: a taken console port is one line before the daemon starts, not a child restarting."""
    from emotiond.core.listen import check_port

    check_port("the web console", settings.web.host, settings.web.port, PORT_CHANGE)


def main(settings_data: dict[str, Any], heartbeat: Any = None) -> None:
    settings = Settings.model_validate(settings_data)
    life = Lifecycle("web", heartbeat, settings.logging.level)
    # The console reads the daemon's metric files for /api/stats and writes none of its own.
    os.environ.pop(ENV_DIR, None)
    from emotiond.clients.messages import load_messages
    from emotiond.clients.web.server import serve

    try:
        asyncio.run(serve(settings, None, load_messages(), life.should_stop, life.tick))
    except (OSError, UsageError) as exc:
        log.error("web console cannot serve on %s:%d: %s", settings.web.host, settings.web.port, exc)
        raise SystemExit(1) from None
    raise SystemExit(0)
