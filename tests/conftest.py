"""Fixtures for every test module (they live in tests/support), a check that no test leaves a ZeroMQ context
open, and a check that fails the run when any test was skipped.

Skips: a tool the suite needs is installed by ``make deps``, and a missing one fails its test with the package to
install. A skip therefore means something is wrong, and fails the run, unless ``EMOTIOND_ALLOW_SKIPS=1`` is set
(for a machine that knowingly lacks a tool). An expected failure (``xfail``, passing or not) always fails the run:
it would otherwise let a broken feature pass in silence.

Under pytest-xdist the reports of every worker reach the controller's hooks, so the checks see the whole run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from support import cpu_report, phases
from support.clients import node_example, xvfb  # noqa: F401
from support.daemon import default_model, events, start_daemon, videos, watch  # noqa: F401
from support.mqtt import mosquitto, mqtt_watch  # noqa: F401
from support.phases import processes_refused_in_check  # noqa: F401
from support.postgres import history_url, postgres_server, postgres_url  # noqa: F401
from support.rtsp import rtsp_camera  # noqa: F401
from support.zmq_contexts import ContextTracker

ALLOW_SKIPS = "EMOTIOND_ALLOW_SKIPS"
_skipped: list[str] = []
_expected_failures: list[str] = []


@pytest.fixture(autouse=True)
def zmq_contexts_closed() -> Iterator[None]:
    """Fails the test (at teardown) if it left a ZeroMQ context, or a socket on the singleton context, open."""
    tracker = ContextTracker()
    tracker.start()
    yield
    leaks = tracker.stop()
    if leaks:
        pytest.fail("ZeroMQ resources left open by this test: " + "; ".join(leaks), pytrace=False)


def pytest_addoption(parser: pytest.Parser) -> None:
    phases.add_options(parser)
    cpu_report.add_option(parser)


def pytest_runtest_setup(item: pytest.Item) -> None:
    cpu_report.start(item)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    cpu_report.stop(item, call)
    yield


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own, which reads the xdist_group marks this adds
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    phases.select(config, items)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    cpu_report.record(report)
    if hasattr(report, "wasxfail"):
        if report.when == "call" or report.skipped:
            _expected_failures.append(report.nodeid)
    elif report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    phases.empty_phase_passes(session)
    refused = _expected_failures or (_skipped and os.environ.get(ALLOW_SKIPS) != "1")
    if refused and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    cpu_report.summarize(terminalreporter, config)
    if _expected_failures:
        terminalreporter.section("expected failures", red=True)
        for nodeid in _expected_failures:
            terminalreporter.write_line(nodeid)
        terminalreporter.write_line(f"{len(_expected_failures)} test(s) marked xfail: the run fails. A known "
                                    "failure is fixed or the test is removed, never kept as a pass.", red=True)
    if not _skipped:
        return
    allowed = os.environ.get(ALLOW_SKIPS) == "1"
    terminalreporter.section("skipped tests", red=not allowed)
    for nodeid in _skipped:
        terminalreporter.write_line(nodeid)
    if allowed:
        terminalreporter.write_line(f"{len(_skipped)} skipped, allowed by {ALLOW_SKIPS}=1")
    else:
        terminalreporter.write_line(f"{len(_skipped)} test(s) skipped: the run fails. Install what they need "
                                    f"(`make deps`), or set {ALLOW_SKIPS}=1 to accept skips knowingly.", red=True)
