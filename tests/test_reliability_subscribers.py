"""Slow and dead subscribers: one that never reads and a logger frozen mid-run must not slow the others or grow
the daemon's memory; what they miss is dropped at the proxy's high-water mark and shows up as counted gaps. And a
subscription left silent by a hung daemon is rebuilt, so it finds the daemon that replaced it."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import time

import pytest
import zmq

from emotiond.clients.subscribe import REBUILD_AFTER_SECONDS, Subscription
from emotiond.core import protocol
from emotiond.core.procfs import rss_kb

from support.clients import CraftedPublisher, crafted_result
from support.daemon import EMOTIOND, REPO, child_pids, free_port, metric_value, wait_for

STALL_SECONDS = 20  # minutes in production; the mechanism (a full high-water mark) is the same after seconds
SLICE_SECONDS = 4  # the healthy subscriber must receive results in every slice of the stall


def logged_seqs(folder) -> set[int]:
    """Seq numbers of the results the logger has written so far (complete lines only: it may be mid-write)."""
    lines = [line for path in folder.rglob("*.jsonl") for line in path.read_text().splitlines()]
    records = [json.loads(line) for line in lines if line.endswith("}")]
    return {r["seq"] for r in records if "kind" not in r}


@pytest.mark.slow
def test_stalled_subscribers_do_not_hurt_others_and_memory_stays_bounded(start_daemon, watch, videos,
                                                                        default_model, tmp_path):
    daemon = start_daemon("--source", f"tv={videos['one_face']}", "--realtime", "--loop")
    daemon.wait_ready()
    healthy = watch(daemon.results_endpoint, ("result",))
    out, log_port = tmp_path / "log", free_port()
    logger = subprocess.Popen([*EMOTIOND, "log", "--out", str(out), "--metrics-port", str(log_port)], cwd=REPO,
                              env=daemon.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(healthy.results()) >= 30, 30, what="results reaching the healthy subscriber")
        wait_for(lambda: logged_seqs(out), 30, what="the logger writing results")
        proxy = child_pids(daemon)["proxy"]
        stale_before = daemon.metric("emotiond_frames_dropped_total", camera="tv", reason="stale")

        ctx = zmq.Context()
        stalled = ctx.socket(zmq.SUB)  # subscribes to everything, raw frames included, and never reads
        stalled.setsockopt(zmq.SUBSCRIBE, b"")
        stalled.connect(daemon.results_endpoint)
        logger.send_signal(signal.SIGSTOP)  # a dead logger: its socket stays connected, nothing is read
        rss = []
        stall_started = time.monotonic()
        while time.monotonic() - stall_started < STALL_SECONDS:
            rss.append((round(time.monotonic() - stall_started), rss_kb(proxy) // 1024))
            time.sleep(2)  # the sampling period of the memory readings, not a wait
        stall_ended = time.monotonic()
        stale_after = daemon.metric("emotiond_frames_dropped_total", camera="tv", reason="stale")
        last_seq = healthy.results()[-1].seq
        logger.send_signal(signal.SIGCONT)
        wait_for(lambda: max(logged_seqs(out)) > last_seq, 30, what="the thawed logger to write new results")
        logger.send_signal(signal.SIGTERM)
        assert logger.wait(15) == 0
        stalled.close(linger=0)
        ctx.destroy(linger=0)
    finally:
        if logger.poll() is None:
            logger.send_signal(signal.SIGCONT)
            logger.kill()

    during = [(t, m) for t, m in list(healthy.received) if stall_started <= t < stall_ended]
    per_slice = [sum(1 for t, _ in during if start <= t - stall_started < start + SLICE_SECONDS)
                 for start in range(0, STALL_SECONDS, SLICE_SECONDS)]
    seqs = sorted({m.seq for _, m in during})
    holes = seqs[-1] - seqs[0] + 1 - len(seqs)
    stale = stale_after - stale_before
    print(f"healthy subscriber during the stall: {len(during)} results, per {SLICE_SECONDS} s {per_slice}, "
          f"{holes} seq numbers missing, {stale:.0f} frames dropped as stale by capture; proxy RSS (s, MB): {rss}")
    assert all(per_slice), f"the healthy subscriber went without results during the stall: {per_slice}"
    assert holes <= stale, f"the healthy subscriber missed {holes} results; capture dropped only {stale:.0f} frames"
    assert max(mb for _, mb in rss) - rss[0][1] < 120, rss  # a high-water mark of frames, not an unbounded queue
    assert child_pids(daemon)["proxy"] == proxy
    assert metric_value(daemon.metrics_text(), "emotiond_process_restarts_total") == 0

    records = [json.loads(line) for path in sorted(out.rglob("*.jsonl")) for line in path.read_text().splitlines()]
    assert records, "positive control: the logger wrote results before it froze"
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


def test_a_silent_subscription_is_rebuilt_and_finds_the_daemon_that_replaced_a_hung_one(tmp_path):
    """A daemon restarted while the old one hangs binds the endpoint anew (a new ipc inode) and the old connection
    stays open, so ZeroMQ never reconnects by itself. A Subscription, as every client reads the bus, rebuilds its
    socket after REBUILD_AFTER_SECONDS of silence, not before, and reads the new daemon; one that never rebuilds
    stays with the hung daemon."""
    endpoint = f"ipc://{tmp_path}/results.sock"
    old = CraftedPublisher(endpoint)
    new: CraftedPublisher | None = None
    received: dict[str, list[str]] = {"rebuilt": [], "never": []}
    with zmq.Context() as ctx:
        subscription = Subscription(endpoint, kinds=("result",), ctx=ctx)
        never = Subscription(endpoint, kinds=("result",), ctx=ctx, rebuild_after=None)
        pairs = (("rebuilt", subscription), ("never", never))

        def read(timeout_ms: int) -> None:
            for name, sub in pairs:
                received[name] += [m.camera for m in sub.receive(timeout_ms) if isinstance(m, protocol.Result)]

        try:
            for seq in itertools.count():  # the old daemon, until both subscriptions have joined
                old.publish(crafted_result("old", seq))
                read(20)
                if all(received.values()) or seq > 500:
                    break
            assert all(received.values()), "the first daemon's results did not reach both subscriptions"
            silent_since = subscription.last_message_at
            new = CraftedPublisher(endpoint)  # the old one hangs: its socket stays open, silent
            for seq in itertools.count():
                new.publish(crafted_result("new", seq))
                read(50)
                if "new" in received["rebuilt"] or time.monotonic() - silent_since > REBUILD_AFTER_SECONDS + 5:
                    break
            assert "new" in received["rebuilt"], \
                f"no result of the new daemon {time.monotonic() - silent_since:.1f} s after the old one went silent"
            silence = subscription.last_message_at - silent_since
            assert REBUILD_AFTER_SECONDS <= silence < REBUILD_AFTER_SECONDS + 1.5, \
                f"the new daemon was read after {silence:.2f} s of silence; expected {REBUILD_AFTER_SECONDS} s"
            assert subscription.rebuilds == 1 and never.rebuilds == 0
            assert "new" not in received["never"], "the new daemon reached a socket that was not rebuilt"
        finally:
            subscription.close()
            never.close()
            old.close()
            if new is not None:
                new.close()


def test_a_subscription_read_late_keeps_what_is_waiting(tmp_path):
    """Silence is the bus's, not the caller's: a reader that was busy for longer than the rebuild delay (a logger
    blocked on its disk) finds every message that arrived meanwhile; nothing queued is thrown away by a rebuild."""
    endpoint = f"ipc://{tmp_path}/results.sock"
    publisher = CraftedPublisher(endpoint)
    with zmq.Context() as ctx, Subscription(endpoint, kinds=("result",), ctx=ctx, rebuild_after=0.3) as subscription:
        try:
            publisher.wait_subscriber()
            for seq in range(50):
                publisher.publish(crafted_result("cam", seq))
            time.sleep(0.6)  # the caller is away for twice the rebuild delay while the messages wait in its socket
            seqs = [m.seq for m in subscription.receive(1000, max_messages=100) if isinstance(m, protocol.Result)]
            assert seqs == list(range(50)) and subscription.rebuilds == 0, (seqs, subscription.rebuilds)
            time.sleep(0.4)  # and a bus that is silent for the rebuild delay is still rebuilt
            subscription.receive(0)
            assert subscription.rebuilds == 1
        finally:
            publisher.close()
