"""``emotiond run``: starts the proxy, the capture process and the workers, keeps them alive, stops them cleanly.

Children are spawned (never forked: TensorFlow and ZeroMQ do not survive fork). A child that dies is
restarted with exponential backoff once it has crashed too often in the last minute; a child whose loop has
stopped ticking is killed and restarted. When every source has ended, capture exits 0 and the daemon
follows. SIGINT/SIGTERM stop capture first (frames in flight finish), then workers (which end their open tracks),
then the clients it runs (they hear those last messages), then the proxy.
"""

from __future__ import annotations

import fcntl
import logging
import multiprocessing as mp
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emotiond.core import bundle as bundles
from emotiond.core import bus, metrics, security
from emotiond.core.errors import UsageError
from emotiond.core.lifecycle import set_process_title
from emotiond.core.listen import writable_folder
from emotiond.core.settings import Settings
from emotiond.daemon.privacy import privacy_line

log = logging.getLogger(__name__)
RESTART_WINDOW_SECONDS = 60.0
FIRST_RESTART_DELAY = 0.05
POLL_SECONDS = 0.1
RUNTIME_DIR_CHANGE = "--runtime-dir or [bus] runtime_dir"


@dataclass
class Child:
    name: str
    role: str
    target: Callable[..., None]
    args: Callable[[Any], tuple]  # heartbeat -> process args
    process: Any = None
    heartbeat: Any = None
    restarts: deque = field(default_factory=deque)
    start_after: float = 0.0
    backoff: float = FIRST_RESTART_DELAY
    stopped: bool = False  # finished on purpose; not restarted


@dataclass(frozen=True)
class ClientRole:
    """A client that ``emotiond run`` starts beside the daemon when its settings enable it (the web console, the
    MQTT bridge). The layer above defines it and hands it down, so the supervisor never imports clients."""

    name: str
    enabled: Callable[[Settings], bool]
    target: Callable[..., None]  # a module-level function(settings data, heartbeat): spawn must find it by name
    preflight: Callable[[Settings], None] | None = None  # raises UsageError for what cannot work (a taken port)


class Supervisor:
    def __init__(self, settings: Settings, client_roles: Sequence[ClientRole] = ()):
        self._settings = settings
        self._client_roles = tuple(client_roles)
        self._ctx = mp.get_context("spawn")
        self._stop_requested = False
        self._children: list[Child] = []
        self._lock_file: Any = None

    # ------------------------------------------------------------ set-up
    def _children_plan(self) -> list[Child]:
        from emotiond.capture import process as capture
        from emotiond.daemon import proxy
        from emotiond.workers import service

        data = self._settings.model_dump(mode="json")
        progress = self._ctx.Array("q", len(self._settings.sources), lock=False)
        plan = [
            Child("proxy", "proxy", proxy.main, lambda hb: (data, hb)),
            Child("capture", "capture", capture.main, lambda hb: (data, hb, progress)),
        ]
        for i in range(self._settings.worker_count() if self._settings.workers.local else 0):
            name = f"w{i + 1}"
            plan.append(Child(name, "worker", service.main, lambda hb, name=name: (data, name, hb)))
        for role in self._client_roles:
            if role.enabled(self._settings):
                plan.append(Child(role.name, role.name, role.target, lambda hb: (data, hb)))
        return plan

    def _acquire_runtime_dir(self) -> None:
        runtime = writable_folder("the runtime folder", self._settings.bus.runtime_dir, RUNTIME_DIR_CHANGE, 0o700)
        self._lock_file = (runtime / "daemon.lock").open("w")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(f"another emotiond is running with runtime dir {runtime} "
                               "(set bus.runtime_dir or EMOTIOND_BUS__RUNTIME_DIR to run a second one)") from None
        self._lock_file.write(str(os.getpid()))
        self._lock_file.flush()

    def _emotions(self) -> tuple[str, ...]:
        """The served bundle's labels, read from bundle.json alone (the supervisor never loads TensorFlow)."""
        path = bundles.resolve(self._settings.classifier.model, self._settings.models.dir)
        try:
            return bundles.load(path, verify=False).labels
        except bundles.BundleError as exc:  # the workers report it; metrics then start without emotions
            log.warning("emotion metrics start empty: %s", exc)
            return ()

    def _on_signal(self, signum: int, _frame: Any) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        self._stop_requested = True

    # ------------------------------------------------------------ running
    def run(self) -> int:
        security.check_binds(self._settings)
        self._acquire_runtime_dir()
        set_process_title("supervisor")
        metrics.enable_multiprocess(self._settings.bus.runtime_dir / "metrics")
        self._children = self._children_plan()
        metrics.initialize([s.name for s in self._settings.sources], self._emotions(),
                           sorted({c.role for c in self._children}))
        if self._settings.metrics.enabled:
            try:  # checked before start-up too; this catches a port taken since
                metrics.serve(self._settings.metrics.host, self._settings.metrics.port)
            except UsageError:
                self._release_runtime_dir()
                raise
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        log.info("%s", privacy_line(self._settings))
        for child in self._children:
            self._start(child)
            if child.role == "proxy":
                time.sleep(0.1)  # the proxy binds first so publishers connect to a live endpoint
        try:
            return self._watch()
        finally:
            self._shutdown()

    def _start(self, child: Child) -> None:
        child.heartbeat = self._ctx.Value("d", time.monotonic(), lock=False)
        child.process = self._ctx.Process(target=child.target, args=child.args(child.heartbeat),
                                          name=f"emotiond-{child.name}", daemon=False)
        child.process.start()
        log.info("started %s (pid %d)", child.name, child.process.pid)

    def _watch(self) -> int:
        stall = self._settings.supervisor.stall_seconds
        while not self._stop_requested:
            now = time.monotonic()
            for child in self._children:
                if child.stopped:
                    continue
                process = child.process
                if process is None:
                    if now >= child.start_after:
                        self._start(child)
                    continue
                if process.is_alive():
                    if now - child.heartbeat.value > stall:
                        log.error("%s has not ticked for %.0fs; killing it", child.name, now - child.heartbeat.value)
                        process.kill()
                    continue
                process.join()
                metrics.mark_process_dead(process.pid)
                if child.role == "capture" and process.exitcode == 0:
                    log.info("all sources ended; shutting down")
                    return 0
                self._schedule_restart(child, process.exitcode, now)
            time.sleep(POLL_SECONDS)
        return 0

    def _schedule_restart(self, child: Child, exitcode: int | None, now: float) -> None:
        policy = self._settings.supervisor
        while child.restarts and now - child.restarts[0] > RESTART_WINDOW_SECONDS:
            child.restarts.popleft()
        if len(child.restarts) >= policy.max_restarts_per_minute:
            child.backoff = min(max(child.backoff * 2, 1.0), policy.restart_backoff_max_seconds)
        else:
            child.backoff = FIRST_RESTART_DELAY
        child.restarts.append(now)
        child.start_after = now + child.backoff
        child.process = None
        metrics.metrics().restarts.labels(child.role).inc()
        log.warning("%s exited with %s; restarting in %.2fs", child.name, exitcode, child.backoff)

    def _shutdown(self) -> None:
        grace = self._settings.supervisor.stop_timeout_seconds
        clients = tuple(role.name for role in self._client_roles)  # after the workers: they get the last results
        for role in ("capture", "worker", *clients, "proxy"):
            group = [c.process for c in self._children if c.role == role and c.process is not None]
            for process in group:
                if process.is_alive():
                    process.terminate()
            deadline = time.monotonic() + grace
            for process in group:
                process.join(max(0.0, deadline - time.monotonic()))
                if process.is_alive():
                    log.warning("%s did not stop in %.1fs; killing it", process.name, grace)
                    process.kill()
                    process.join(1.0)
        bus.remove_ipc(self._settings.endpoint(role) for role in ("frames", "results_in", "results"))
        self._release_runtime_dir()
        log.info("stopped")

    def _release_runtime_dir(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            Path(self._lock_file.name).unlink(missing_ok=True)
            self._lock_file = None
