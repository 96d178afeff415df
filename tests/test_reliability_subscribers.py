"""Slow and dead subscribers: one that never reads and a logger frozen mid-run must not slow the others or grow
the daemon's memory; what they miss is dropped at the proxy's high-water mark and shows up as counted gaps."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import zmq

from emotiond.daemon.core import protocol

from support.daemon import EMOTIOND, REPO, child_pids, free_port, metric_value, rss_kb

STALL_SECONDS = 20  # minutes in production; the mechanism (a full high-water mark) is the same after seconds


def _rate(watcher, start: float, end: float) -> float:
    return sum(1 for t, m in list(watcher.received) if start <= t < end and isinstance(m, protocol.Result)) / (
        end - start)


def test_stalled_subscribers_do_not_hurt_others_and_memory_stays_bounded(start_daemon, watch, videos,
                                                                        default_model, tmp_path):
    daemon = start_daemon("--source", f"tv={videos['one_face']}", "--realtime", "--loop")
    daemon.wait_ready(2)
    healthy = watch(daemon.results_endpoint, ("result",))
    out, log_port = tmp_path / "log", free_port()
    logger = subprocess.Popen([*EMOTIOND, "log", "--out", str(out), "--metrics-port", str(log_port)], cwd=REPO,
                              env=daemon.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(4)
        baseline_end = time.monotonic()
        baseline = _rate(healthy, baseline_end - 3, baseline_end)
        proxy = child_pids(daemon)["proxy"]

        ctx = zmq.Context()
        stalled = ctx.socket(zmq.SUB)  # subscribes to everything, raw frames included, and never reads
        stalled.setsockopt(zmq.SUBSCRIBE, b"")
        stalled.connect(daemon.results_endpoint)
        logger.send_signal(signal.SIGSTOP)  # a dead logger: its socket stays connected, nothing is read
        rss = []
        stall_started = time.monotonic()
        while time.monotonic() - stall_started < STALL_SECONDS:
            rss.append((round(time.monotonic() - stall_started), rss_kb(proxy) // 1024))
            time.sleep(2)
        during = _rate(healthy, stall_started + 3, time.monotonic())
        logger.send_signal(signal.SIGCONT)
        time.sleep(3)
        logger.send_signal(signal.SIGTERM)
        assert logger.wait(15) == 0
        stalled.close(linger=0)
        ctx.destroy(linger=0)
    finally:
        if logger.poll() is None:
            logger.send_signal(signal.SIGCONT)
            logger.kill()

    print(f"healthy subscriber: {baseline:.1f} results/s before, {during:.1f} during the stall; "
          f"proxy RSS (s, MB): {rss}")
    assert during >= 0.7 * baseline, (baseline, during)
    assert max(mb for _, mb in rss) - rss[0][1] < 120, rss  # a high-water mark of frames, not an unbounded queue
    assert child_pids(daemon)["proxy"] == proxy
    assert metric_value(daemon.metrics_text(), "emotiond_process_restarts_total") == 0

    records = [json.loads(line) for path in sorted(out.rglob("*.jsonl")) for line in path.read_text().splitlines()]
    results = {r["seq"] for r in records if r.get("kind", "result") == "result" and "seq" in r}
    gaps = [r for r in records if r.get("kind") == "gap"]
    assert gaps, "the frozen logger missed results, and must say so"
    covered = set(results)
    for gap in gaps:
        covered |= set(range(gap["first_seq"], gap["last_seq"] + 1))
    assert covered == set(range(min(covered), max(covered) + 1)), "a seq neither logged nor recorded as a gap"
    print(f"logger: {len(results)} results written, {len(gaps)} gap(s) covering "
          f"{sum(g['missed'] for g in gaps)} missed seq numbers")
    assert daemon.stop() == 0
