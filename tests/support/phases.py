"""How ``make test`` and ``make check`` split the suite.

``make test`` runs the suite in two phases: ``--phase parallel`` under pytest-xdist, then ``--phase serial`` alone,
for the tests marked ``serial`` (they measure timing or rates, or need the whole machine, so they must not share
it with other tests). The option composes with ``-m`` and ``-k``: a phase with nothing left to run passes.

``make check`` runs ``--no-processes``: the tests not marked ``process``, with every way of starting a process
refused, so a test that starts one while not marked fails at once instead of slowing the quick loop down.
"""

from __future__ import annotations

import ast
import functools
import multiprocessing.process
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

PHASES = ("all", "parallel", "serial")
SERIAL, PROCESS = "serial", "process"
# Fixtures that start processes: a test using one is marked ``process`` without saying so itself.
PROCESS_FIXTURES = frozenset({"start_daemon", "events", "mosquitto", "mqtt_watch", "rtsp_camera", "xvfb",
                              "node_example", "chromium", "postgres_server", "postgres_url", "history_url"})


class ProcessStartedError(RuntimeError):
    """A test run by ``make check`` started a process: it needs the ``process`` marker."""


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("emotiond")
    group.addoption("--phase", choices=PHASES, default="all",
                    help="parallel: the tests not marked serial (run them under -n); serial: only those; all: both")
    group.addoption("--no-processes", action="store_true",
                    help="leave out the tests marked process, and fail any other test that starts a process")


# Names whose use in a test, in a fixture it requests, or in a function of its module that either calls, means a
# process is started: read from the source with ast, so no test has to say it (``make check`` refuses the rest).
PROCESS_NAMES = frozenset({"subprocess", "Popen", "run_cli", "EMOTIOND", "multiprocessing", "network_namespace",
                           "lan", "web_process", "run_emotiond", "RtspCamera", "fork"})


@functools.cache
def _module_definitions(path: str) -> dict[str, set[str]]:
    """Each top-level function and class of a test module, with the names its body uses."""
    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    definitions = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            definitions[node.name] = {n.id if isinstance(n, ast.Name) else n.attr for n in ast.walk(node)
                                      if isinstance(n, (ast.Name, ast.Attribute))}
    return definitions


def _uses_processes(path: str, roots: set[str]) -> bool:
    definitions = _module_definitions(path)
    seen, todo = set(), [name for name in roots if name in definitions]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        used = definitions[name]
        if used & PROCESS_NAMES:
            return True
        todo += [other for other in used if other in definitions]
    return False


def mark_process_tests(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        function = getattr(item, "originalname", item.name)
        if PROCESS_FIXTURES & fixtures or _uses_processes(str(item.path), {function, *fixtures}):
            item.add_marker(PROCESS)


def group_shared_fixtures(items: list[pytest.Item]) -> None:
    """Tests that share a module- or class-scoped fixture go to one xdist worker (``--dist loadgroup``), so the
    fixture (a daemon, a trained model, a built wheel) is made once, not once per worker that runs one of them."""
    for item in items:
        definitions = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
        if any(d.scope in ("module", "class") for defs in definitions.values() for d in defs):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))


def select(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect what the chosen phase (and --no-processes) leaves out; group tests that share a fixture."""
    mark_process_tests(items)
    group_shared_fixtures(items)
    phase = config.getoption("--phase")
    no_processes = config.getoption("--no-processes")

    def wanted(item: pytest.Item) -> bool:
        if no_processes and item.get_closest_marker(PROCESS):
            return False
        serial = item.get_closest_marker(SERIAL) is not None
        return phase == "all" or (phase == SERIAL) == serial

    kept = [item for item in items if wanted(item)]
    dropped = [item for item in items if not wanted(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
        config.stash[_DESELECTED] = True


_DESELECTED = pytest.StashKey[bool]()


def empty_phase_passes(session: pytest.Session) -> None:
    """A phase that its own selection left empty (no serial test matches ``-k``, say) is not a failure."""
    if session.exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and session.config.stash.get(_DESELECTED, False):
        session.exitstatus = pytest.ExitCode.OK


def _refuse(*args: Any, **kwargs: Any) -> Any:
    raise ProcessStartedError("this test starts a process: mark it @pytest.mark.process (make check leaves those out)")


@pytest.fixture(autouse=True)
def processes_refused_in_check(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Under ``--no-processes``: subprocesses, multiprocessing children and forks all raise ``ProcessStartedError``."""
    if request.config.getoption("--no-processes"):
        monkeypatch.setattr(subprocess.Popen, "_execute_child", _refuse)
        monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", _refuse)
        monkeypatch.setattr(os, "fork", _refuse)
        monkeypatch.setattr(os, "posix_spawn", _refuse)
    yield
