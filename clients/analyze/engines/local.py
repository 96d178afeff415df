"""The local engine of ``emotiond analyze``: one process per core on this machine.

Processes start with ``spawn`` (forking a process that holds TensorFlow, LiteRT or OpenCV threads is unsafe).
Each loads the model once and then takes one unit at a time over its own pipe, so when one dies the engine
knows exactly which unit it held: that unit goes to another process (and a replacement process starts), up
to ``max_attempts`` times; the other units are untouched.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import signal
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from emotiond.clients.analyze.engines.base import MAX_ATTEMPTS, Done, Event, Progress, Retry, failed
from emotiond.clients.analyze.plan import WorkUnit
from emotiond.clients.analyze.unit import WorkerSetupError, run_unit, warm_up
from emotiond.core.errors import UsageError

log = logging.getLogger(__name__)


def _worker_main(connection: Connection, payload: str, name: str, log_level: str) -> None:
    """A local engine process: load the model, then run units from the pipe until it closes."""
    from emotiond.core.lifecycle import configure_logging, set_process_title

    set_process_title(f"analyze-{name}")
    configure_logging(log_level, f"analyze {name}")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        warm_up(payload)
    except WorkerSetupError as exc:
        connection.send(("fatal", str(exc)))
        return
    connection.send(("ready",))

    def report(index: int, frames: int) -> None:
        connection.send(("progress", index, frames))

    while True:
        try:
            unit = connection.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if unit is None:
            return
        try:
            result = run_unit(unit, payload, report)
        except Exception as exc:  # a bug: the input fails, the process lives on
            logging.getLogger(__name__).exception("%s: unexpected error", unit.label)
            result = failed(unit, f"internal error: {exc}")
        connection.send(("done", result))


@dataclass
class _Process:
    name: str
    process: Any
    connection: Connection
    ready: bool = False
    unit: WorkUnit | None = None


class LocalEngine:
    def __init__(self, payload: str, processes: int, log_level: str = "WARNING", max_attempts: int = MAX_ATTEMPTS):
        self._payload = payload
        self._count = processes
        self._log_level = log_level
        self._max_attempts = max_attempts
        self._context = multiprocessing.get_context("spawn")
        self._processes: list[_Process] = []
        self._queue: deque[WorkUnit] = deque()
        self._attempts: dict[int, int] = {}
        self._started = 0
        self._early_deaths = 0
        self.description = f"local, {processes} process{'es' if processes > 1 else ''}"
        for _ in range(processes):
            self._start_process()

    @property
    def slots(self) -> int:
        return self._count

    def pids(self) -> list[int]:
        return [p.process.pid for p in self._processes]

    def _start_process(self) -> None:
        self._started += 1
        name = f"w{self._started}"
        parent, child = self._context.Pipe()
        process = self._context.Process(target=_worker_main, args=(child, self._payload, name, self._log_level),
                                        name=f"analyze-{name}", daemon=True)
        process.start()
        child.close()
        self._processes.append(_Process(name, process, parent))

    def submit(self, unit: WorkUnit) -> None:
        self._queue.append(unit)
        self._dispatch()

    def _dispatch(self) -> None:
        for worker in self._processes:
            if not self._queue:
                return
            if worker.ready and worker.unit is None:
                unit = self._queue.popleft()
                try:
                    worker.connection.send(unit)
                except OSError:  # it died a moment ago; poll notices and requeues
                    self._queue.appendleft(unit)
                    continue
                worker.unit = unit

    def poll(self, timeout: float) -> list[Event]:
        events: list[Event] = []
        waitables: list[Any] = [w.connection for w in self._processes] + [w.process.sentinel for w in self._processes]
        ready = wait(waitables, timeout)
        for worker in list(self._processes):
            if worker.connection in ready:
                self._receive(worker, events)
            if worker.process.sentinel in ready or not worker.process.is_alive():
                self._receive(worker, events)  # whatever it sent before it died
                self._lost(worker, events)
        self._dispatch()
        return events

    def _receive(self, worker: _Process, events: list[Event]) -> None:
        try:
            while worker.connection.poll():
                message = worker.connection.recv()
                kind = message[0]
                if kind == "progress":
                    events.append(Progress(message[1], message[2]))
                elif kind == "done":
                    worker.unit = None
                    self._early_deaths = 0
                    events.append(Done(message[1]))
                elif kind == "ready":
                    worker.ready = True
                elif kind == "fatal":
                    raise UsageError(message[1])
        except (EOFError, OSError):
            pass  # it died; the sentinel says so

    def _lost(self, worker: _Process, events: list[Event]) -> None:
        worker.process.join(timeout=1.0)
        worker.connection.close()
        self._processes.remove(worker)
        code = worker.process.exitcode
        unit = worker.unit
        if unit is None and not worker.ready:
            self._early_deaths += 1
            if self._early_deaths > 2 * self._count + MAX_ATTEMPTS:
                raise UsageError("analysis processes keep dying while they start (see the messages above)")
        log.warning("analysis process %s (pid %s) died (exit code %s)%s", worker.name, worker.process.pid, code,
                    f" while analysing {unit.label}" if unit else "")
        if unit is not None:
            attempts = self._attempts[unit.index] = self._attempts.get(unit.index, 1) + 1
            if attempts > self._max_attempts:
                events.append(Done(failed(unit, f"its process died {self._max_attempts} times while analysing it")))
            else:
                log.warning("running %s again in another process (attempt %d of %d)", unit.label, attempts,
                            self._max_attempts)
                events.append(Retry(unit.index, "process died"))
                self._queue.appendleft(unit)
        self._start_process()

    def close(self) -> None:
        for worker in self._processes:
            with contextlib.suppress(OSError):
                worker.connection.send(None)
        deadline = time.monotonic() + 5.0
        for worker in self._processes:
            worker.process.join(timeout=max(0.1, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(timeout=5.0)
            worker.connection.close()
        self._processes.clear()
