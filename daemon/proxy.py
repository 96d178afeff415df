"""The results proxy process: one well-known endpoint where every worker publishes and every client subscribes."""

from __future__ import annotations

import logging
import time
from typing import Any

from emotiond.core import bus
from emotiond.core.lifecycle import Lifecycle
from emotiond.core.settings import Settings

log = logging.getLogger(__name__)


def main(settings_data: dict[str, Any], heartbeat: Any = None) -> None:
    settings = Settings.model_validate(settings_data)
    life = Lifecycle("proxy", heartbeat, settings.logging.level)
    proxy = bus.ResultsProxy(settings)
    proxy.start()
    log.info("results proxy: publish to %s, subscribe at %s", settings.endpoint("results_in"),
             settings.endpoint("results"))
    try:
        while not life.should_stop():
            life.tick()
            time.sleep(0.2)
    finally:
        proxy.stop()
    raise SystemExit(0)
