"""The Dask engine of ``emotiond analyze``: work units as dask.distributed tasks.

Without ``--scheduler`` it starts a LocalCluster on this machine: one single-threaded worker process per core.
Its scheduler, nannies and workers listen on 127.0.0.1 only, and the scheduler's small HTTP server (health and
metrics; there is no dashboard without bokeh) on a free port rather than 8787, so runs never collide.

With ``--scheduler tcp://HOST:PORT`` it joins a running cluster (SLURM through dask-jobqueue, Kubernetes, a few
workstations: see docs/analyze.md); those workers need emotiond and its model, and must see the inputs and
``--out`` at the same paths.

When a worker dies the scheduler runs its tasks again on other workers (up to its ``allowed-failures``);
the engine notices a unit starting on a second worker and says so. Workers send progress as Dask events.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

from emotiond.clients.analyze.engines.base import Done, Event, Progress, Retry, failed
from emotiond.clients.analyze.plan import WorkUnit
from emotiond.clients.analyze.unit import UnitResult, WorkerSetupError, run_unit
from emotiond.core.errors import UsageError

log = logging.getLogger(__name__)

EVENT_TOPIC = "emotiond-analyze"
SCHEDULER_SCHEMES = ("tcp", "tls")
MAX_ADDRESS_LENGTH = 255
PROGRESS_EVERY_S = 0.25
# What this engine's LocalCluster changes from Dask's defaults, and why (figures in docs/analyze.md):
# * Dask starts workers with MALLOC_TRIM_THRESHOLD_ set, which also turns off glibc's adaptive mmap threshold, so
#   every decoded frame (about 1 MB) was mapped and unmapped again, kernel work on every frame;
# * the statistical profiler sampling the task's stack every 10 ms feeds a dashboard nobody opens here.
LOCAL_CLUSTER_CONFIG = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
                        "distributed.worker.profile.enabled": False}


def check_scheduler_address(address: str) -> None:
    """``tcp://HOST:PORT`` or ``tls://HOST:PORT``, or a UsageError that says what is wrong."""
    example = "for example tcp://10.0.0.5:8786"
    if len(address) > MAX_ADDRESS_LENGTH:
        raise UsageError(f"--scheduler: address longer than {MAX_ADDRESS_LENGTH} characters")
    parts = urlsplit(address)
    if parts.scheme not in SCHEDULER_SCHEMES or not parts.netloc:
        raise UsageError(f"--scheduler {address!r}: expected tcp://HOST:PORT or tls://HOST:PORT ({example})")
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None or not 1 <= port <= 65535 or parts.path not in ("", "/") \
            or parts.query or parts.fragment or parts.username:
        raise UsageError(f"--scheduler {address!r}: expected HOST:PORT after {parts.scheme}:// ({example})")


def run_dask_unit(unit: WorkUnit, payload: str, run_id: str) -> UnitResult:
    """The task: ``run_unit`` on this worker, telling the client where it started and how far it got."""
    from distributed import get_worker

    worker = get_worker()
    worker.log_event(EVENT_TOPIC, {"run": run_id, "unit": unit.index, "start": worker.address})
    last = 0.0

    def report(index: int, frames: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= PROGRESS_EVERY_S:
            last = now
            worker.log_event(EVENT_TOPIC, {"run": run_id, "unit": index, "frames": frames})

    return run_unit(unit, payload, report)


class DaskEngine:
    def __init__(self, payload: str, scheduler: str | None, workers: int, connect_timeout: float):
        try:
            from dask import config as dask_config
            from distributed import Client, LocalCluster
        except ImportError:
            raise UsageError("--engine dask needs dask.distributed: pip install 'emotiond[dask]'") from None
        self._payload = payload
        self._run = uuid.uuid4().hex
        self._events: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self._futures: dict[Any, WorkUnit] = {}
        self._units: dict[int, WorkUnit] = {}
        self._started_on: dict[int, str] = {}
        self._cluster = None
        # the client's own scheduler and nannies log every connection at INFO: keep them to warnings
        logging.getLogger("distributed").setLevel(max(logging.WARNING, logging.getLogger().getEffectiveLevel()))
        if scheduler is None:
            with dask_config.set(LOCAL_CLUSTER_CONFIG):
                self._cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                             host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                             silence_logs=logging.ERROR)
            self.client = Client(self._cluster)
            self.description = f"dask LocalCluster, {workers} workers at {self._cluster.scheduler_address}"
            self._local_workers = workers
        else:
            try:
                self.client = Client(scheduler, timeout=connect_timeout)
            except (OSError, TimeoutError) as exc:
                raise UsageError(f"--scheduler {scheduler}: no dask scheduler answered within "
                                 f"{connect_timeout:g} s ({exc})") from None
            self.description = f"dask cluster at {scheduler}"
            self._local_workers = 0
        self.client.subscribe_topic(EVENT_TOPIC, self._on_event)

    @property
    def slots(self) -> int:
        if self._local_workers:
            return self._local_workers
        workers = self.client.scheduler_info().get("workers", {})
        return max(4, sum(int(w.get("nthreads", 1)) for w in workers.values()))

    def _on_event(self, event: Any) -> None:
        """Runs on the client's event loop: only hand the message over."""
        _, message = event
        if isinstance(message, dict) and message.get("run") == self._run:
            self._events.put(message)

    def submit(self, unit: WorkUnit) -> None:
        future = self.client.submit(run_dask_unit, unit, self._payload, self._run, pure=False,
                                    key=f"emotiond-analyze-{self._run}-{unit.index}")
        self._futures[future] = unit
        self._units[unit.index] = unit

    def poll(self, timeout: float) -> list[Event]:
        deadline = time.monotonic() + timeout
        events: list[Event] = []
        while True:
            while True:
                try:
                    self._message(self._events.get_nowait(), events)
                except queue.Empty:
                    break
            for future in [f for f in self._futures if f.done()]:
                events.append(Done(self._finished(future)))
            remaining = deadline - time.monotonic()
            if events or remaining <= 0:
                return events
            with contextlib.suppress(queue.Empty):
                self._message(self._events.get(timeout=min(0.05, remaining)), events)

    def _message(self, message: dict[str, Any], events: list[Event]) -> None:
        index = message.get("unit")
        if not isinstance(index, int) or index not in self._units:
            return
        if "start" in message:
            address = str(message["start"])
            previous = self._started_on.get(index)
            self._started_on[index] = address
            if previous is not None and previous != address:
                log.warning("running %s again on %s: its worker %s was lost", self._units[index].label, address,
                            previous)
                events.append(Retry(index, "worker lost"))
        elif isinstance(message.get("frames"), int):
            events.append(Progress(index, message["frames"]))

    def _finished(self, future: Any) -> UnitResult:
        from distributed import KilledWorker

        unit = self._futures.pop(future)
        try:
            if future.status == "finished":
                return future.result()
            if future.status == "cancelled":
                return failed(unit, "its task was cancelled by the cluster")
            error = future.exception()
            if isinstance(error, WorkerSetupError):
                raise UsageError(str(error))
            if isinstance(error, KilledWorker):
                return failed(unit, "the workers running it died repeatedly (see the cluster's allowed-failures)")
            log.error("%s: unexpected error on the cluster: %r", unit.label, error)
            return failed(unit, f"internal error: {error}")
        finally:
            self._units.pop(unit.index, None)
            self._started_on.pop(unit.index, None)
            future.release()

    def close(self) -> None:
        for future in self._futures:
            future.cancel()
        self._futures.clear()
        try:
            self.client.unsubscribe_topic(EVENT_TOPIC)
            self.client.close()
        finally:
            if self._cluster is not None:
                self._cluster.close()
