"""One end-to-end emotiond run for the benchmark: the daemon as a user starts it, read as a user reads it.

The daemon is ``emotiond run`` with the user's settings (config file, ``EMOTIOND_*`` environment, flags) plus
its own runtime folder and metrics port, so a misconfiguration shows in the figures. Its events are read
through a ``Subscription`` that stamps each batch on receipt, which gives capture→event latency where a
subscriber sees it. A sampler thread records CPU and peak RSS of every process of the daemon's session, and the
role each one names in its process title.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from emotiond.benchmarks import harness
from emotiond.clients.subscribe import Subscription
from emotiond.core import procfs, protocol
from emotiond.core.errors import UsageError
from emotiond.core.settings import load_settings

log = logging.getLogger(__name__)
RECEIVE_MS = 200
LOG_TAIL_LINES = 15
SILENT_SECONDS = 15.0  # once the daemon has spoken, this long without a result means it has stalled
STARTUP_SECONDS = 60.0  # this long without any message from its start, model load included, means the same


class RunError(RuntimeError):
    """Nothing could be measured: the daemon exited with an error or before a word, or its input never started."""


@dataclass(frozen=True)
class DaemonSettings:
    """What the user gave for the daemon: a config file (or None: $EMOTIOND_CONFIG) and ``emotiond run`` flags."""

    config: Path | None = None
    flags: tuple[str, ...] = ()

    def config_file(self) -> Path | None:
        if self.config is not None:
            return self.config
        return Path(os.environ["EMOTIOND_CONFIG"]) if os.environ.get("EMOTIOND_CONFIG") else None

    def run_args(self, runtime: Path, sources: Mapping[str, object]) -> list[str]:
        """``emotiond run`` arguments: ``runtime`` as its runtime folder, these flags and config file, and
        ``--source NAME=WHERE`` for each of ``sources`` (a file or a URL)."""
        args = ["--runtime-dir", str(runtime), *self.flags]
        config = self.config_file()
        if config is not None:
            args += ["--config", str(config)]
        for name, where in sources.items():
            args += ["--source", f"{name}={where}"]
        return args


@dataclass
class Run:
    """What a subscriber saw of one run, with the daemon's resource use."""

    results: list[protocol.Result]
    received_at: list[float]  # time.time() at the subscriber, one per result
    startup_seconds: float  # daemon start to first event received
    wall_seconds: float  # daemon start to last event received
    cpu_seconds: float  # all processes, first to last event
    cpu_by_role: dict[str, float]
    peak_rss: dict[str, float]
    unfinished: list[str] = field(default_factory=list)  # cameras whose end of stream never reached us
    frames_received: int = 0  # frame.<camera> messages, when the run watched frames as a viewer does


class ProcessSampler(threading.Thread):
    """Cumulative CPU seconds, peak RSS and role of every process of a session, sampled every 50 ms until stopped.
    Roles are read while the processes run (``supervisor``, ``worker``, ``capture``...), so they outlive them."""

    def __init__(self, session: int):
        super().__init__(daemon=True)
        self.session = session
        self.peak_rss: dict[int, int] = {}
        self.roles: dict[int, str] = {}
        self._cpu: dict[int, float] = {}
        self._snapshots: list[tuple[float, dict[int, float]]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(0.05)

    def sample(self) -> None:
        pids = procfs.session_pids(self.session)
        for pid in pids:
            self._cpu[pid] = procfs.cpu_seconds(pid)
            self.peak_rss[pid] = max(self.peak_rss.get(pid, 0), procfs.peak_rss_kb(pid) * 1024)
        named = procfs.roles(pid for pid in pids if pid not in self.roles)
        # A child forked a moment ago still shows the supervisor's title until it names itself: ask again later.
        self.roles.update({pid: role.split(" ")[0] for pid, role in named.items()
                           if pid == self.session or not role.startswith("supervisor")})
        self._snapshots.append((time.monotonic(), dict(self._cpu)))

    def cpu_between(self, start: float, end: float) -> dict[int, float]:
        """CPU seconds per process from the last sample at or before ``start`` to the first at or after ``end``."""
        moments = [moment for moment, _ in self._snapshots]
        if not moments:
            return {}
        before = self._snapshots[max(0, bisect.bisect_right(moments, start) - 1)][1]
        after = self._snapshots[min(len(moments) - 1, bisect.bisect_left(moments, end))][1]
        return {pid: cpu - before.get(pid, 0.0) for pid, cpu in after.items()}

    def stop(self) -> None:
        self._halt.set()
        self.join(2)


@contextlib.contextmanager
def sampled_daemon(args: Sequence[str], env: Mapping[str, str],
                   log_path: Path) -> Iterator[tuple[harness.Daemon, ProcessSampler]]:
    """``emotiond run ARGS`` started by ``harness.start`` (a metrics port of its choosing) with a ``ProcessSampler``
    on its session; on leaving, the daemon is stopped (SIGTERM to its session, SIGKILL after 30 s), then the
    sampler."""
    running = harness.start(args, env, log_path, metrics_port=0)
    sampler = ProcessSampler(running.pid)
    sampler.start()
    try:
        yield running, sampler
    finally:
        running.stop(30, session=True)
        sampler.stop()


def run_emotiond(sources: dict[str, Path], realtime: bool, daemon: DaemonSettings, work: Path,
                 timeout: float = 600.0, watch_frames: bool = False) -> Run:
    """Start the daemon on ``sources``, collect every result until each camera ends, then let it exit.

    A daemon that sends no result for SILENT_SECONDS once it has spoken (status messages alone, such as a source
    reopened again and again, are no progress), that says nothing for STARTUP_SECONDS from its start (its first
    status can go out before the subscription reaches it), or that exits 0 without an end of stream reaching the
    subscriber, is stopped and its run returned as it stands, with those cameras in ``unfinished``: the frames it
    still owed then show as lost (or dropped) in the figures rather than as a timeout with no figures at all.
    ``watch_frames`` also subscribes to every camera's frames, as a viewer does (the workers then encode them).
    """
    runtime = Path(tempfile.mkdtemp(prefix="bench-", dir=work))
    args = daemon.run_args(runtime, sources)
    if realtime:
        args.append("--realtime")
    settings = load_settings(daemon.config_file(), {"bus": {"runtime_dir": runtime}})
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    log_path = runtime / "daemon.log"
    results: list[protocol.Result] = []
    received_at: list[float] = []
    first = last = spoke = 0.0
    ended: set[str] = set()
    frames_received = 0
    kinds = ("result", "status", "frame") if watch_frames else ("result", "status")
    with Subscription(settings=settings, kinds=kinds) as subscription:
        started = time.monotonic()
        with sampled_daemon(args, env, log_path) as (running, sampler):
            process = running.process
            while ended != set(sources):
                messages = subscription.receive(RECEIVE_MS)
                now_wall, now = time.time(), time.monotonic()
                spoke = spoke or (now if messages else 0.0)
                for message in messages:
                    if isinstance(message, protocol.Status):
                        if message.state == "eos":
                            ended.add(message.camera)
                    elif isinstance(message, protocol.Result):
                        first = first or now
                        last = now
                        results.append(message)
                        received_at.append(now_wall)
                    elif isinstance(message, protocol.Frame):
                        frames_received += 1
                if messages:
                    continue
                if process.poll() is not None:
                    if process.returncode == 2 and not results:
                        raise UsageError(f"the daemon refused its settings: {_tail(log_path, 1)}")
                    if process.returncode != 0 or not spoke:
                        raise RunError(f"the daemon exited with status {process.returncode} before the end of "
                                       f"{sorted(set(sources) - ended)}; its log ends:\n{_tail(log_path)}")
                    # Exit status 0 comes only once every source has ended: what is missing was lost on the way.
                    log.warning("the daemon finished but the end of stream of %s never reached the subscriber",
                                sorted(set(sources) - ended))
                    break
                waited = now - max(spoke, last) if spoke else now - started
                if waited > (SILENT_SECONDS if spoke else STARTUP_SECONDS):
                    # Frames still owed after this long without a result are lost as far as any subscriber can
                    # tell; stopping here lets the checks count them beside every other figure, not a timeout.
                    log.warning("no result for %.0f s with %s unfinished; stopping the daemon; its log ends:\n%s",
                                waited, sorted(set(sources) - ended), _tail(log_path))
                    break
                if now - started > timeout:
                    raise RunError(f"no end of stream within {timeout:.0f} s; the daemon's log ends:\n"
                                   f"{_tail(log_path)}")
            if ended == set(sources):
                process.wait(60)
    steady = sampler.cpu_between(first, last)
    return Run(results=results, received_at=received_at, startup_seconds=first - started if first else 0.0,
               wall_seconds=last - started if last else 0.0, cpu_seconds=sum(steady.values()),
               cpu_by_role=_by_role(steady, sampler.roles),
               peak_rss=_by_role(sampler.peak_rss, sampler.roles, peak=True),
               unfinished=sorted(set(sources) - ended), frames_received=frames_received)


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _by_role(values: dict[int, float] | dict[int, int], roles: dict[int, str],
             peak: bool = False) -> dict[str, float]:
    out: dict[str, float] = {}
    for pid, value in values.items():
        role = roles.get(pid, "other")
        out[role] = max(out.get(role, 0), value) if peak else out.get(role, 0) + value
    return out

