"""Fixtures that start the real thing: daemon processes, ZeroMQ sockets, test videos from real face photos.

Readiness is always read from the bus (a result or a status message arriving), never from log text or a sleep.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import zmq

from emotiond.benchmarks import harness
from emotiond.benchmarks.harness import free_port
from emotiond.capture import synthetic
from emotiond.clients.subscribe import Subscription
from emotiond.core import protocol
from emotiond.core.settings import DEFAULT_MODEL_NAME, default_models_dir
from emotiond.workers import blazeface

REPO = Path(__file__).resolve().parents[2]
EMOTIOND = [sys.executable, "-m", "emotiond"]
DEFAULT_MODEL = default_models_dir() / DEFAULT_MODEL_NAME
BLAZEFACE_MODELS = [blazeface.model_path(default_models_dir(), model) for model in blazeface.MODELS.values()]


def child_env(runtime_dir: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"EMOTIOND_BUS__RUNTIME_DIR": str(runtime_dir), "PYTHONUNBUFFERED": "1",
                "TF_CPP_MIN_LOG_LEVEL": "2", "XDG_STATE_HOME": str(runtime_dir / "state")}, **extra)
    return env


def run_cli(*args: str, env: dict[str, str], timeout: float = 120.0) -> subprocess.CompletedProcess:
    """``emotiond ARGS`` to completion. ``env`` is required: it carries the test's own runtime folder."""
    return subprocess.run([*EMOTIOND, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def kill_leftovers(processes: Iterable[subprocess.Popen], timeout: float = 10.0) -> None:
    """A fixture's teardown: kill and reap every process a test left running."""
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(timeout)


def wait_for(predicate: Callable[[], Any], timeout: float, what: str = "condition", interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned), or fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# ---------------------------------------------------------------- metrics

# Sample names a family of each type exports besides its own name (prometheus_client's text format).
_SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_count", "_sum", "_bucket", "_created"),
             "summary": ("_count", "_sum", "_created"), "gauge": (), "info": ("_info",), "stateset": (),
             "gaugehistogram": ("_gcount", "_gsum", "_bucket"), "unknown": ()}
# Types whose samples count events: a labelled one shows a label set only once it has counted something there.
_COUNTING = ("counter", "histogram", "summary")


def _family(text: str, name: str):
    """The metric family that exports samples called ``name``; a name no family exports fails the test."""
    from prometheus_client.parser import text_string_to_metric_families

    families = list(text_string_to_metric_families(text))
    for family in families:
        if name == family.name or any(name == family.name + suffix for suffix in _SUFFIXES.get(family.type, ())):
            return family
    prefix = name.split("_")[0]
    near = sorted({f.name for f in families if f.name.startswith(prefix)})
    raise AssertionError(f"no metric family exports {name}; these do: {', '.join(near) or 'none'}")


def metric_samples(text: str, name: str, **labels: str) -> list[float]:
    """Values of the samples called ``name`` whose labels include ``labels`` (empty when there is none).

    Fails the test when no family exports ``name`` at all, or when ``labels`` names a label the family's samples
    do not have: a misspelt name or label cannot read as "no sample"."""
    family = _family(text, name)
    samples = [sample for sample in family.samples if sample.name == name]
    known = {key for sample in samples for key in sample.labels}
    unknown = sorted(set(labels) - known)
    if samples and unknown:
        raise AssertionError(f"{name} has no label {', '.join(unknown)}; its labels: {', '.join(sorted(known))}")
    return [sample.value for sample in samples if all(sample.labels.get(k) == v for k, v in labels.items())]


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels``.

    A counter (or histogram count) with no sample for those labels is 0: prometheus_client shows a labelled
    series only once it has counted something, while its HELP/TYPE lines say the family exists. A gauge with no
    sample for them has no value, and a name no family exports is a typo: both fail the test."""
    values = metric_samples(text, name, **labels)
    if not values and _family(text, name).type not in _COUNTING:
        raise AssertionError(f"{name} ({_family(text, name).type}) has no sample with labels {labels}")
    return float(sum(values))


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return response.read().decode()


# ---------------------------------------------------------------- the daemon

@dataclass
class DaemonHandle:
    process: subprocess.Popen
    runtime_dir: Path
    metrics_port: int
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    metrics_answered: bool = False  # set by the first scrape that succeeds

    @property
    def results_endpoint(self) -> str:
        return f"ipc://{self.runtime_dir / 'results'}.sock"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def metrics_text(self) -> str:
        return scrape(self.metrics_port)

    def first_metrics_text(self, timeout: float = 60.0) -> str:
        """/metrics as soon as it answers (the supervisor serves it before any child has started); fails at once,
        with the log's tail, if the daemon exits first."""
        def attempt() -> str | None:
            try:
                return self.metrics_text()
            except (urllib.error.URLError, ConnectionError):
                assert self.process.poll() is None, self.log()[-3000:]
                return None

        return wait_for(attempt, timeout, "the metrics port", interval=0.02)

    def metric(self, name: str, patience: float = 30.0, **labels: str) -> float:
        """``metric_value`` on a fresh scrape (a missing family, or a gauge without those labels, fails the test).
        A scrape that fails (the daemon still starting, or a timeout on a loaded machine) is tried again for up to
        ``patience`` seconds; an endpoint that does not answer by then, or a daemon that exits, fails the test
        rather than reading as 0."""
        deadline = time.monotonic() + patience
        while True:
            try:
                text = self.metrics_text()
            except (OSError, ConnectionError) as exc:
                if self.process.poll() is not None:
                    raise AssertionError(f"daemon exited ({self.process.returncode}) before /metrics gave {name}:\n"
                                         f"{self.log()[-3000:]}") from None
                if time.monotonic() > deadline:
                    raise AssertionError(f"/metrics did not answer within {patience}s ({exc}) for {name}") from None
                time.sleep(0.2)
                continue
            self.metrics_answered = True
            return metric_value(text, name, **labels)

    def wait_for(self, predicate: Callable[[], Any], timeout: float, what: str = "condition") -> Any:
        """``wait_for`` that fails at once, with the log's tail, if the daemon exits before ``predicate`` holds."""
        def check() -> Any:
            exited = self.process.poll() is not None
            value = predicate()
            if not value and exited:
                raise AssertionError(f"daemon exited ({self.process.returncode}) while waiting for {what}:\n"
                                     f"{self.log()[-3000:]}")
            return value

        return wait_for(check, timeout, what)

    def wait_ready(self, workers: int = 1, timeout: float = 90.0) -> protocol.Result:
        """Block until the pipeline works end to end: a result arrives on the bus, and ``workers`` worker processes
        run. Returns that first result. Fails at once if the daemon exits.

        Only for sources that keep publishing (live or looping): a finite file may end before this subscribes;
        for those, start a ``watch`` on the results endpoint before anything else.
        """
        deadline = time.monotonic() + timeout
        with zmq.Context() as ctx, Subscription(self.results_endpoint, kinds=("result",), ctx=ctx) as subscription:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise AssertionError(f"daemon exited early ({self.process.returncode}):\n{self.log()[-3000:]}")
                results = subscription.receive(200)
                if results and sum(role.startswith("worker ") for role in child_roles(self).values()) >= workers:
                    return results[0]
        raise AssertionError(f"no result on the bus within {timeout}s:\n{self.log()[-3000:]}")

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


def child_roles(handle: DaemonHandle) -> dict[int, str]:
    """The live children of a daemon and the role in their process title (``worker w1``, ``capture``, ``proxy``).
    A child just spawned shows up once it has named itself."""
    return harness.child_roles(handle.process.pid)


def child_pids(handle: DaemonHandle) -> dict[str, int]:
    """The pid of each live child by name: ``w1``, ``capture``, ``proxy`` (see ``child_roles``)."""
    return harness.child_pids(handle.process.pid)


# ---------------------------------------------------------------- subscribers

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
    """Run ``emotiond events`` as a subprocess against a daemon; returns a reader of its JSON lines.

    Start it right after the daemon: the first results come only once a worker has loaded its model, which
    takes far longer than this client needs to subscribe. A late subscription cannot pass unnoticed: every test
    that reads a finite file checks that each seq number arrived.
    """
    readers: list[EventsReader] = []

    def start(daemon: DaemonHandle, *args: str) -> EventsReader:
        out = tmp_path / f"events{len(readers)}.jsonl"
        with out.open("w") as fh:
            process = subprocess.Popen([*EMOTIOND, "events", *args], cwd=REPO, env=daemon.env, stdout=fh,
                                       stderr=subprocess.DEVNULL)
        reader = EventsReader(process, out)
        readers.append(reader)
        return reader

    yield start
    kill_leftovers(reader.process for reader in readers)


class BusWatcher:
    """Subscribes to a daemon's results and status events in a thread, stamping each with its arrival time."""

    def __init__(self, endpoint: str, kinds: tuple[str, ...] = ("result", "status"), cameras: tuple[str, ...] = ()):
        self.endpoint = endpoint
        self.kinds = kinds
        self.cameras = cameras
        self.received: list[tuple[float, object]] = []  # (monotonic arrival, decoded message)
        self.bad_messages: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with zmq.Context() as ctx, Subscription(self.endpoint, self.cameras, kinds=self.kinds, ctx=ctx) as subscription:
            self.bad_messages = subscription.bad_messages
            while not self._stop.is_set():
                for message in subscription.receive(100):
                    self.received.append((time.monotonic(), message))

    @property
    def invalid(self) -> int:
        return sum(self.bad_messages.values())

    def results(self) -> list[protocol.Result]:
        return [m for _, m in list(self.received) if isinstance(m, protocol.Result)]

    def results_after(self, moment_wall: float) -> list[protocol.Result]:
        """Results of frames captured after a wall-clock moment."""
        return [m for m in self.results() if m.captured_at > moment_wall]

    def statuses(self, state: str | None = None) -> list[protocol.Status]:
        return [m for _, m in list(self.received)
                if isinstance(m, protocol.Status) and (state is None or m.state == state)]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        assert not self._thread.is_alive(), "the bus watcher did not stop"


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


# ---------------------------------------------------------------- inputs

@pytest.fixture(scope="session")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Short MP4s of real face photos moving over a background, with their true boxes beside them."""
    root = tmp_path_factory.mktemp("videos")
    return {
        "one_face": synthetic.write_video(root / "one_face.mp4", synthetic.SceneSpec(faces=1, frames=60)),
        "two_faces": synthetic.write_video(root / "two_faces.mp4", synthetic.SceneSpec(faces=2, frames=45)),
    }


@pytest.fixture(scope="session")
def default_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default bundle and BlazeFace models, fetched if missing (``make test`` fetches them first).

    The fetch (under a minute here) runs inside the first test's 300 s limit, which counts fixture set-up.
    """
    if not (DEFAULT_MODEL / "bundle.json").is_file() or not all(path.is_file() for path in BLAZEFACE_MODELS):
        fetched = run_cli("models", "fetch", env=child_env(tmp_path_factory.mktemp("fetch")), timeout=240)
        assert fetched.returncode == 0, fetched.stderr[-3000:]
    return DEFAULT_MODEL
