"""``--cpu-report N``: the N tests that cost the most CPU, the test process's own and its reaped children's.

Wall time (``--durations``) hides what a test costs the machine: a test that waits 20 s costs nothing, one that
trains a model for 10 s costs one core for 10 s. On 2 cores the suite's CPU time bounds how fast it can ever run,
so this is the figure to cut. Works under pytest-xdist: each worker puts its figure in the report's
``user_properties``, which reach the controller.
"""

from __future__ import annotations

import resource

import pytest

PROPERTY = "cpu_seconds"
_costs: dict[str, float] = {}


def add_option(parser: pytest.Parser) -> None:
    parser.getgroup("emotiond").addoption("--cpu-report", type=int, default=0, metavar="N",
                                          help="list the N tests that used the most CPU (with their children)")


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


_STARTED = pytest.StashKey[float]()


def start(item: pytest.Item) -> None:
    """Called as the test's set-up begins."""
    item.stash[_STARTED] = _cpu_seconds()


def stop(item: pytest.Item, call: pytest.CallInfo) -> None:
    """Called once the teardown has run, before its report is made (the report copies ``user_properties``)."""
    if call.when == "teardown" and _STARTED in item.stash:
        item.user_properties.append((PROPERTY, _cpu_seconds() - item.stash[_STARTED]))


def record(report: pytest.TestReport) -> None:
    for name, value in report.user_properties:
        if name == PROPERTY and report.when == "teardown":
            _costs[report.nodeid] = value


def summarize(terminalreporter, config: pytest.Config) -> None:
    count = config.getoption("--cpu-report")
    if not count or not _costs:
        return
    total = sum(_costs.values())
    terminalreporter.section(f"CPU: {total:.0f} s in all, the {count} costliest tests (with their children)")
    for nodeid, seconds in sorted(_costs.items(), key=lambda item: -item[1])[:count]:
        terminalreporter.write_line(f"{seconds:8.1f} s {seconds / total:6.1%}  {nodeid}")
