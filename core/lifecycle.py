"""What every child process does the same way: its name in ps, logging, signals, heartbeats and noticing an
orphaned state.

Children ignore SIGINT (the supervisor decides when to stop) and turn SIGTERM into a stop flag. Their loops
wake at least once a second, call ``tick()``, and leave when ``should_stop()`` says so, including when the
supervisor has died.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from typing import Any

from emotiond.core.redact import RedactingFilter

TITLE_PREFIX = "emotiond: "


def process_title(role: str) -> str:
    """What ps and top show for a role: ``worker-w1`` reads ``emotiond: worker w1``, ``proxy`` ``emotiond: proxy``."""
    kind, _, name = role.partition("-")
    return f"{TITLE_PREFIX}{kind} {name}" if name else f"{TITLE_PREFIX}{kind}"


def set_process_title(role: str) -> None:
    """Name this process after its role; a spawned child is otherwise ``python3 -c from multiprocessing...``."""
    import setproctitle

    setproctitle.setproctitle(process_title(role))


def configure_logging(level: str, role: str | None = None) -> None:
    """The one logging set-up of every process, replacing any earlier one: the CLI sets a level before the
    settings are read, and the ``[logging]`` level (or ``--log-level``) must win once they are."""
    name = f"{role}[%(process)d]" if role else "%(processName)s"
    logging.basicConfig(level=getattr(logging, level), force=True,
                        format=f"%(asctime)s %(levelname)s {name} %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:  # a handler's filter sees every record, whichever logger
        handler.addFilter(RedactingFilter())


class Lifecycle:
    def __init__(self, role: str, heartbeat: Any | None = None, log_level: str = "INFO"):
        self.role = role
        set_process_title(role)
        self._heartbeat = heartbeat  # multiprocessing.Value('d') shared with the supervisor, or None
        self._parent = os.getppid()
        self._stop = False
        configure_logging(log_level, role)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, self._on_term)
        self.tick()

    def _on_term(self, _signum: int, _frame: Any) -> None:
        self._stop = True

    def tick(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.value = time.monotonic()

    def should_stop(self) -> bool:
        if self._heartbeat is not None and os.getppid() != self._parent:
            logging.getLogger(__name__).warning("%s: supervisor is gone, exiting", self.role)
            self._stop = True
        return self._stop


def configure_threads(opencv_threads: int) -> None:
    """Size OpenCV's pool so N workers do not oversubscribe the cores."""
    import cv2

    cv2.setNumThreads(max(1, opencv_threads))


def exit_on_sigterm() -> None:
    """SIGTERM (``timeout``, ``kill``) raises SystemExit in the main thread, so ``finally`` blocks still stop the
    daemons, brokers and browsers a benchmark started instead of leaving them running."""

    def _exit(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)
