"""Crash injection: SIGKILL each kind of child, freeze a worker, and watch the supervisor bring the pipeline back.

Figures printed here (restart and recovery times) are the ones reported in docs/reliability.md.
"""

from __future__ import annotations

import os
import re
import signal
import time

from support.daemon import child_pids, descendants, metric_value, wait_for

RECOVERY_LIMIT_SECONDS = 2.0


def _kill_and_time_recovery(daemon, watcher, name: str, sig: int = signal.SIGKILL) -> tuple[float, float]:
    """Kill one child; return (seconds until results of newly captured frames flow, seconds until it is back)."""
    old_pid = child_pids(daemon)[name]
    killed_wall, killed = time.time(), time.monotonic()
    os.kill(old_pid, sig)
    wait_for(lambda: child_pids(daemon)[name] != old_pid, 60, what=f"{name} restarted")
    restarted = time.monotonic() - killed
    wait_for(lambda: watcher.results_after(killed_wall + 0.05), 10, what=f"results after killing {name}")
    flowing = time.monotonic() - killed
    return flowing, restarted


def test_killed_children_are_restarted_and_events_resume(start_daemon, watch, videos, default_model):
    daemon = start_daemon("--source", f"tv={videos['one_face']}", "--realtime", "--loop")
    daemon.wait_ready(2)
    watcher = watch(daemon.results_endpoint)
    wait_for(lambda: watcher.results_after(0), 20, what="first results")

    figures = {}
    for name in ("w1", "capture", "proxy"):
        flowing, restarted = _kill_and_time_recovery(daemon, watcher, name)
        figures[name] = (flowing, restarted)
        assert flowing <= RECOVERY_LIMIT_SECONDS, f"{name}: events resumed after {flowing:.2f}s"
        if name == "w1":
            killed = time.monotonic() - restarted
            wait_for(lambda: daemon.log().count("ready (model") >= 3, 60, what="replacement worker ready")
            print(f"replacement w1 ready (model loaded) after {(time.monotonic() - killed) * 1000:.0f} ms")
    text = daemon.metrics_text()
    for role in ("worker", "capture", "proxy"):
        assert metric_value(text, "emotiond_process_restarts_total", role=role) >= 1, role
    for name, (flowing, restarted) in figures.items():
        print(f"SIGKILL {name}: results of new frames after {flowing * 1000:.0f} ms, "
              f"process replaced after {restarted * 1000:.0f} ms")
    assert daemon.stop() == 0


def test_restarts_back_off_once_the_per_minute_cap_is_reached(start_daemon, watch, videos, default_model):
    daemon = start_daemon("--source", f"tv={videos['one_face']}", "--realtime", "--loop", workers=1,
                          env={"EMOTIOND_SUPERVISOR__MAX_RESTARTS_PER_MINUTE": "2"})
    daemon.wait_ready(1)
    for _ in range(4):
        pid = child_pids(daemon)["capture"]
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda pid=pid: child_pids(daemon)["capture"] != pid, 15, what="capture restarted")
    delays = [float(d) for d in re.findall(r"capture exited with -9; restarting in ([\d.]+)s", daemon.log())]
    assert delays[:2] == [0.05, 0.05], delays
    assert delays[2] >= 1.0 and delays[3] >= 2 * delays[2] - 1e-6, delays
    assert metric_value(daemon.metrics_text(), "emotiond_process_restarts_total", role="capture") == 4
    print(f"capture restart delays with a cap of 2/min: {delays}")
    assert daemon.stop() == 0


def test_frozen_worker_is_killed_and_replaced(start_daemon, watch, videos, default_model):
    daemon = start_daemon("--source", f"tv={videos['one_face']}", "--realtime", "--loop",
                          env={"EMOTIOND_SUPERVISOR__STALL_SECONDS": "2"})
    daemon.wait_ready(2)
    watcher = watch(daemon.results_endpoint)
    wait_for(lambda: watcher.results_after(0), 20, what="first results")
    frozen = child_pids(daemon)["w2"]
    stopped_at = time.monotonic()
    os.kill(frozen, signal.SIGSTOP)
    wait_for(lambda: "w2 has not ticked" in daemon.log(), 10, what="stall detected")
    detected = time.monotonic() - stopped_at
    wait_for(lambda: child_pids(daemon)["w2"] != frozen, 10, what="w2 replaced")
    assert frozen not in descendants(daemon.process.pid)
    wait_for(lambda: daemon.log().count("ready (model") >= 3, 60, what="replacement worker ready")
    since = time.time()
    wait_for(lambda: watcher.results_after(since), 15, what="results after the replacement")
    assert metric_value(daemon.metrics_text(), "emotiond_process_restarts_total", role="worker") >= 1
    print(f"SIGSTOP w2: killed after {detected:.2f}s with stall_seconds=2")
    assert daemon.stop() == 0
