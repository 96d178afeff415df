"""Fixtures that start the real thing: daemon processes, ZeroMQ sockets, test videos from real face photos."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from emotiond.daemon.capture import synthetic
from emotiond.daemon.core.procfs import descendants, fd_count, rss_kb  # noqa: F401  (shared with test modules)
from emotiond.daemon.core.settings import DEFAULT_MODEL_NAME, default_models_dir
from emotiond.workers import blazeface

REPO = Path(__file__).resolve().parents[2]
EMOTIOND = [sys.executable, "-m", "emotiond"]
DEFAULT_MODEL = default_models_dir() / DEFAULT_MODEL_NAME
BLAZEFACE_MODELS = [blazeface.model_path(default_models_dir(), model) for model in blazeface.MODELS.values()]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def child_env(runtime_dir: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"EMOTIOND_BUS__RUNTIME_DIR": str(runtime_dir), "PYTHONUNBUFFERED": "1",
                "TF_CPP_MIN_LOG_LEVEL": "2"}, **extra)
    return env


@dataclass
class DaemonHandle:
    process: subprocess.Popen
    runtime_dir: Path
    metrics_port: int
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def results_endpoint(self) -> str:
        return f"ipc://{self.runtime_dir / 'results'}.sock"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def metrics_text(self) -> str:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
            return response.read().decode()

    def wait_ready(self, workers: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log()
            if text.count("ready (model") >= workers:
                return
            if self.process.poll() is not None:
                raise AssertionError(f"daemon exited early ({self.process.returncode}):\n{text[-3000:]}")
            time.sleep(0.1)
        raise AssertionError(f"daemon not ready in {timeout}s:\n{self.log()[-3000:]}")

    def stop(self, timeout: float = 15.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
            raise AssertionError(f"daemon did not stop within {timeout}s:\n{self.log()[-3000:]}") from None


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator:
    """Start ``emotiond run`` with its own runtime folder and metrics port; stopped after the test."""
    handles: list[DaemonHandle] = []

    def start(*args: str, workers: int = 2, env: dict[str, str] | None = None) -> DaemonHandle:
        runtime = tmp_path / f"run{len(handles)}"
        port = free_port()
        log_path = tmp_path / f"daemon{len(handles)}.log"
        environment = child_env(runtime, **(env or {}))
        command = [*EMOTIOND, "run", "--metrics-port", str(port), "--workers", str(workers), *args]
        with log_path.open("w") as log_file:
            process = subprocess.Popen(command, cwd=REPO, env=environment, stdout=log_file,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        handle = DaemonHandle(process, runtime, port, log_path, environment)
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        if handle.process.poll() is None:
            handle.process.send_signal(signal.SIGTERM)
            try:
                handle.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(handle.process.pid, signal.SIGKILL)
                handle.process.wait(5)


@dataclass
class EventsReader:
    process: subprocess.Popen
    out_path: Path

    def wait(self, timeout: float = 120.0) -> list[dict]:
        self.process.wait(timeout)
        return self.lines()

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.out_path.read_text().splitlines() if line.strip()]


@pytest.fixture
def events(tmp_path: Path) -> Iterator:
    """Run ``emotiond events`` as a subprocess against a daemon; returns a reader of its JSON lines."""
    readers: list[EventsReader] = []

    def start(daemon: DaemonHandle, *args: str) -> EventsReader:
        out = tmp_path / f"events{len(readers)}.jsonl"
        with out.open("w") as fh:
            process = subprocess.Popen([*EMOTIOND, "events", *args], cwd=REPO, env=daemon.env, stdout=fh,
                                       stderr=subprocess.DEVNULL)
        reader = EventsReader(process, out)
        readers.append(reader)
        time.sleep(0.3)  # the subscription reaches the proxy before the first results
        return reader

    yield start
    for reader in readers:
        if reader.process.poll() is None:
            reader.process.kill()
            reader.process.wait(5)


@pytest.fixture(scope="session")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Short MP4s of real face photos moving over a background, with their true boxes beside them."""
    root = tmp_path_factory.mktemp("videos")
    return {
        "one_face": synthetic.write_video(root / "one_face.mp4", synthetic.SceneSpec(faces=1, frames=60)),
        "two_faces": synthetic.write_video(root / "two_faces.mp4", synthetic.SceneSpec(faces=2, frames=45)),
    }


@pytest.fixture(scope="session")
def default_model() -> Path:
    if not (DEFAULT_MODEL / "bundle.json").is_file() or not all(path.is_file() for path in BLAZEFACE_MODELS):
        subprocess.run([*EMOTIOND, "models", "fetch"], cwd=REPO, check=True)
    return DEFAULT_MODEL


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120.0) -> subprocess.CompletedProcess:
    return subprocess.run([*EMOTIOND, *args], cwd=REPO, env=env or child_env(Path("/tmp/emotiond-cli-test")),
                          capture_output=True, text=True, timeout=timeout)


# ---------------------------------------------------------------- reliability helpers (processes, metrics, bus)

def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels`` (0 when there are none)."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def child_pids(handle: DaemonHandle) -> dict[str, int]:
    """The newest pid of each child, from the supervisor's ``started NAME (pid N)`` log lines."""
    import re

    return {m.group(1): int(m.group(2)) for m in re.finditer(r"started (\S+) \(pid (\d+)\)", handle.log())}


def wait_for(predicate, timeout: float, what: str = "condition", interval: float = 0.05):
    """Poll ``predicate`` until it returns something truthy (returned), or fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class BusWatcher:
    """Subscribes to a daemon's results and status events in a thread, stamping each with its arrival time."""

    def __init__(self, endpoint: str, kinds: tuple[str, ...] = ("result", "status"), cameras: tuple[str, ...] = ()):
        import threading

        self.endpoint = endpoint
        self.kinds = kinds
        self.cameras = cameras
        self.received: list[tuple[float, object]] = []  # (monotonic arrival, decoded message)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import zmq

        from emotiond.clients.subscribe import Subscription

        with zmq.Context() as ctx, Subscription(self.endpoint, self.cameras, kinds=self.kinds, ctx=ctx) as subscription:
            self.subscription = subscription
            while not self._stop.is_set():
                for message in subscription.receive(100):
                    self.received.append((time.monotonic(), message))

    @property
    def invalid(self) -> int:
        return sum(self.subscription.bad_messages.values())

    def results_after(self, moment_wall: float) -> list:
        """Results of frames captured after a wall-clock moment."""
        from emotiond.daemon.core import protocol

        return [m for _, m in list(self.received)
                if isinstance(m, protocol.Result) and m.captured_at > moment_wall]

    def statuses(self, state: str | None = None) -> list:
        from emotiond.daemon.core import protocol

        return [m for _, m in list(self.received)
                if isinstance(m, protocol.Status) and (state is None or m.state == state)]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)


@pytest.fixture
def watch() -> Iterator:
    """``watch(endpoint)`` starts a BusWatcher that is closed after the test."""
    watchers: list[BusWatcher] = []

    def start(endpoint: str, kinds: tuple[str, ...] = ("result", "status"),
              cameras: tuple[str, ...] = ()) -> BusWatcher:
        watcher = BusWatcher(endpoint, kinds, cameras)
        watchers.append(watcher)
        return watcher

    yield start
    for watcher in watchers:
        watcher.close()
