"""The supervisor with real processes: clean SIGTERM, and a SIGKILLed worker replaced while events flow."""

from __future__ import annotations

import os
import re
import signal
import time

from emotiond.daemon.core.procfs import session_pids

from support.daemon import metric_value


def child_pid(log: str, name: str) -> int:
    matches = re.findall(rf"started {name} \(pid (\d+)\)", log)
    assert matches, log[-2000:]
    return int(matches[-1])


def test_sigterm_stops_everything_cleanly(start_daemon, default_model):
    daemon = start_daemon("--source", "demo", "--loop")
    daemon.wait_ready(2)
    assert len(session_pids(daemon.process.pid)) >= 5  # supervisor, proxy, capture, 2 workers
    started = time.monotonic()
    assert daemon.stop(timeout=10) == 0
    assert time.monotonic() - started < 8
    time.sleep(0.2)
    assert session_pids(daemon.process.pid) == []
    assert not list(daemon.runtime_dir.glob("*.sock"))


def test_killed_worker_is_restarted_and_events_keep_flowing(start_daemon, events, videos, default_model):
    daemon = start_daemon("--source", f"tv={videos['one_face']}", "--loop")
    daemon.wait_ready(2)
    victim = child_pid(daemon.log(), "w1")
    os.kill(victim, signal.SIGKILL)
    reader = events(daemon, "--count", "40", "--timeout", "60")
    results = reader.wait(70)
    assert len(results) == 40
    deadline = time.monotonic() + 10
    while "restarting" not in daemon.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert re.search(r"w1 exited with -9; restarting", daemon.log())
    assert child_pid(daemon.log(), "w1") != victim
    assert metric_value(daemon.metrics_text(), "emotiond_process_restarts_total", role="worker") == 1
    assert daemon.stop() == 0


def test_file_mode_loses_no_frame_when_a_worker_dies(start_daemon, events, videos, default_model):
    daemon = start_daemon("--source", f"tv={videos['one_face']}")
    reader = events(daemon, "--until-eos", "--timeout", "120")
    daemon.wait_ready(2)
    time.sleep(0.5)
    os.kill(child_pid(daemon.log(), "w2"), signal.SIGKILL)
    assert daemon.process.wait(120) == 0, daemon.log()[-2000:]
    seqs = {r["seq"] for r in reader.wait(30)}
    assert seqs == set(range(60))
