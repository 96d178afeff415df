"""Starting and stopping emotiond for the benchmarks, one way for all of them.

``start`` runs ``python -m emotiond`` (``run`` by default, with a free metrics port) in a session of its own, its
output in a log file; ``Daemon.stop`` sends SIGTERM and waits, and kills the whole session if the daemon does not
exit in time. The children of a daemon are named by the role in their process title (``core.procfs.roles``),
never by reading its log. A benchmark stops what it started when it is sent SIGTERM because its ``main`` calls
``core.lifecycle.exit_on_sigterm``, so the ``finally`` block holding ``stop`` still runs. ``write_results`` saves
a benchmark's Markdown tables with their JSON copy.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emotiond.core import procfs

EMOTIOND = (sys.executable, "-m", "emotiond")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_results(out: Path, stem: str, markdown: str, report: dict[str, Any]) -> None:
    """``out``/STEM.md holding ``markdown`` and ``out``/STEM.json holding ``report``, creating ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.md").write_text(markdown)
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2))


def child_roles(root: int) -> dict[int, str]:
    """The live descendants of ``root`` (a daemon's supervisor) and the role in their process title: ``worker w1``,
    ``capture``, ``proxy``. A child just spawned shows up once it has named itself."""
    return procfs.roles(procfs.descendants(root))


def child_pids(root: int) -> dict[str, int]:
    """The pid of each live child of ``root`` by name: ``w1``, ``capture``, ``proxy`` (see ``child_roles``)."""
    return {role.split(" ")[-1]: pid for pid, role in child_roles(root).items()}


@dataclass
class Daemon:
    """A started ``python -m emotiond`` process, the leader of its own session."""

    process: subprocess.Popen
    log_path: Path
    metrics_port: int | None = None  # the port given to ``run``; 0 lets the daemon choose

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def child_pids(self) -> dict[str, int]:
        return child_pids(self.pid)

    def wait_child(self, name: str, timeout: float = 60.0) -> int:
        """The pid of the child called ``name`` (``mqtt``, ``w1``) once it has named itself; exits the benchmark
        with the log's tail if that takes longer than ``timeout`` or the daemon exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            pid = self.child_pids().get(name)
            if pid:
                return pid
            time.sleep(0.1)
        raise SystemExit(f"the daemon started no {name} process:\n{self.log()[-2000:]}")

    def stop(self, timeout: float = 30.0, session: bool = False) -> int:
        """SIGTERM to the daemon (``session``: to every process of its session) and its exit status; after
        ``timeout`` seconds, SIGKILL to the whole session."""
        if self.process.poll() is None:
            if session:
                os.killpg(self.pid, signal.SIGTERM)
            else:
                self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            return self.process.wait(5)


def start(args: Sequence[str], env: Mapping[str, str], log_path: Path, *, command: str = "run",
          options: Sequence[str] = (), metrics_port: int | None = None) -> Daemon:
    """``python -m emotiond OPTIONS COMMAND ARGS`` with ``env``, stdout and stderr in ``log_path``. ``run`` also
    gets ``--metrics-port``: ``metrics_port``, or a free port when it is None."""
    command_line = [*EMOTIOND, *options, command]
    if command == "run":
        metrics_port = free_port() if metrics_port is None else metrics_port
        command_line += ["--metrics-port", str(metrics_port)]
    with log_path.open("w") as log_file:
        process = subprocess.Popen([*command_line, *args], env=dict(env), stdout=log_file, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    return Daemon(process, log_path, metrics_port)
