"""Choosing the engine of ``emotiond analyze`` from its flags: ``--engine local|dask``, ``--scheduler``,
``--workers``. Engines are imported only when chosen, so the local engine never needs Dask."""

from __future__ import annotations

from emotiond.clients.analyze.engines.base import Engine, cpu_count
from emotiond.core.errors import UsageError

MAX_LOCAL_WORKERS = 256
LOCAL = "local"
DASK = "dask"
ENGINES = (LOCAL, DASK)


def make_engine(kind: str, payload: str, workers: int | None, scheduler: str | None, connect_timeout: float,
                log_level: str) -> Engine:
    """The engine the command line asked for; user mistakes are UsageErrors (exit 2)."""
    if workers is not None and not 1 <= workers <= MAX_LOCAL_WORKERS:
        raise UsageError(f"--workers must be between 1 and {MAX_LOCAL_WORKERS}")
    if kind == LOCAL:
        if scheduler is not None:
            raise UsageError("--scheduler needs --engine dask")
        from emotiond.clients.analyze.engines.local import LocalEngine

        return LocalEngine(payload, workers or cpu_count(), log_level)
    if kind == DASK:
        from emotiond.clients.analyze.engines.cluster import DaskEngine, check_scheduler_address

        if scheduler is not None:
            if workers is not None:
                raise UsageError("--workers sizes the LocalCluster; a cluster given with --scheduler has its own")
            check_scheduler_address(scheduler)
        return DaskEngine(payload, scheduler=scheduler, workers=workers or cpu_count(),
                          connect_timeout=connect_timeout)
    raise UsageError(f"unknown engine {kind!r}: local or dask")
