"""The history writer as a process: a child of ``emotiond run`` (``[history] enabled``, the default).

Imports stay inside the functions: the command line imports this module to list the roles, and must not pay for
SQLAlchemy or ZeroMQ to print its help. A database the writer must not use (a foreign or newer file) is refused
in one line before the daemon starts; one that cannot be reached (PostgreSQL down) is waited for by the writer.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from emotiond.core.settings import Settings

log = logging.getLogger(__name__)
RECEIVE_QUEUE = 4096  # results the writer's socket holds while it commits or purges (about 20 s of six cameras)


def enabled(settings: Settings) -> bool:
    return settings.history.enabled


def preflight(settings: Settings) -> None:
    """``emotiond run``: a foreign or newer SQLite file, or a missing PostgreSQL driver, is one line (exit 2)."""
    from emotiond.clients.history.store import open_store

    open_store(settings, prepare=False).close()


def write(settings: Settings, should_stop: Callable[[], bool], tick: Callable[[], None] = lambda: None, *,
          endpoint: str | None = None, metrics: Any = None) -> int:
    """Subscribe to the bus and write the history until ``should_stop``. A database we must not use is logged
    once, and the process then idles until stopped rather than being restarted in a loop."""
    from emotiond.clients.subscribe import Subscription

    def count_bad(error: Any) -> None:
        log.debug("history: malformed message skipped: %s", error)

    # Subscribed first: the socket queues what the bus publishes while the database is opened and prepared. Its
    # queue is deeper than the bus's default, so a commit or a purge step that takes a moment loses nothing.
    deeper = settings.model_copy(deep=True)
    deeper.bus.high_water_mark = max(settings.bus.high_water_mark, RECEIVE_QUEUE)
    subscription = Subscription(endpoint or settings.endpoint("results"), kinds=("result", "status", "tracks"),
                                settings=deeper, on_bad=count_bad)
    try:
        return _write(settings, subscription, should_stop, tick, metrics)
    finally:
        subscription.close()


def _write(settings: Settings, subscription: Any, should_stop: Callable[[], bool], tick: Callable[[], None],
           metrics: Any) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from emotiond.clients.history.schema import HistoryError
    from emotiond.clients.history.store import HistoryUnavailableError, open_store
    from emotiond.clients.history.writer import HistoryWriter

    try:
        store = open_store(settings, prepare=False)
    except HistoryError as exc:
        return _idle(f"history not written: {exc}", should_stop, tick)
    try:
        writer = HistoryWriter(store, settings, metrics=metrics)
        try:
            writer.start()
        except HistoryUnavailableError as exc:
            log.warning("history: %s; rows are held until it answers", exc)
        except (SQLAlchemyError, OSError) as exc:  # a server down at start: the writer's loop retries it
            log.warning("history: %s is not reachable yet (%s); rows are held until it answers", store.where, exc)
        return writer.run(subscription, should_stop, tick)
    except HistoryError as exc:
        return _idle(f"history not written: {exc}", should_stop, tick)
    finally:
        store.close()


def _idle(message: str, should_stop: Callable[[], bool], tick: Callable[[], None]) -> int:
    log.error("%s", message)
    while not should_stop():
        tick()
        time.sleep(0.5)
    return 0


def main(settings_data: dict[str, Any], heartbeat: Any = None) -> None:
    """The child's entry point under ``emotiond run``."""
    from emotiond.core.lifecycle import Lifecycle

    settings = Settings.model_validate(settings_data)
    life = Lifecycle("history", heartbeat, settings.logging.level)
    raise SystemExit(write(settings, life.should_stop, life.tick))


def standalone() -> int:
    """The writer alone, with settings from the environment (``EMOTIOND_HISTORY__URL``, ``EMOTIOND_BUS__...``), until
    SIGTERM or Ctrl-C: for tests and benchmarks that drive the writer process directly."""
    from prometheus_client import CollectorRegistry

    from emotiond.clients.history.metrics import HistoryMetrics
    from emotiond.core.lifecycle import configure_logging
    from emotiond.core.settings import load_settings

    settings = load_settings()
    configure_logging(settings.logging.level, "history")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return write(settings, stop.is_set, metrics=HistoryMetrics(CollectorRegistry()))
