"""SIGTERM: capture stops, frames in flight finish, everything exits within 5 s and leaves nothing behind."""

from __future__ import annotations

import signal
import time

from emotiond.daemon.core import protocol

from support.daemon import descendants, wait_for

EXIT_LIMIT_SECONDS = 5.0


def test_sigterm_finishes_in_flight_frames_and_leaves_nothing(start_daemon, watch, videos, default_model):
    daemon = start_daemon("--source", f"tv={videos['one_face']}", "--loop")  # file mode: every frame counts
    daemon.wait_ready(2)
    watcher = watch(daemon.results_endpoint)
    wait_for(lambda: len(watcher.results_after(0)) >= 30, 30, what="results flowing")
    children = descendants(daemon.process.pid)
    assert len(children) >= 4, children  # proxy, capture, two workers (plus the resource tracker)

    sent = time.monotonic()
    daemon.process.send_signal(signal.SIGTERM)
    code = daemon.process.wait(15)
    took = time.monotonic() - sent
    print(f"SIGTERM to exit: {took * 1000:.0f} ms")
    assert code == 0, daemon.log()[-2000:]
    assert took < EXIT_LIMIT_SECONDS, daemon.log()[-2000:]
    time.sleep(0.3)  # the watcher drains what the proxy sent before closing

    seqs = sorted(m.seq for _, m in watcher.received if isinstance(m, protocol.Result))
    first = seqs[0]
    assert seqs == list(range(first, first + len(seqs))), "a frame handed to a worker was never published"
    assert "finishing frames in flight" in daemon.log()
    leftovers = [pid for pid in children if _alive(pid)]
    assert not leftovers, f"orphans: {leftovers}"
    assert not list(daemon.runtime_dir.glob("*.sock")), list(daemon.runtime_dir.iterdir())
    assert not (daemon.runtime_dir / "daemon.lock").exists()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_logger_keeps_everything_through_daemon_and_logger_sigterm(start_daemon, watch, videos, default_model,
                                                                  tmp_path):
    """The daemon stops first (frames in flight finish), then the logger: every result published is on disk."""
    import json
    import subprocess

    from support.daemon import EMOTIOND, REPO

    daemon = start_daemon("--source", f"tv={videos['one_face']}", "--loop")
    daemon.wait_ready(2)
    watcher = watch(daemon.results_endpoint, ("result",))
    out = tmp_path / "log"
    logger = subprocess.Popen([*EMOTIOND, "log", "--out", str(out), "--fsync-seconds", "5"], cwd=REPO,
                              env=daemon.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)  # the logger's subscription is in place
        wait_for(lambda: len(watcher.results_after(time.time())) > 0 or len(watcher.received) > 100, 30,
                 what="results flowing to both subscribers")
        daemon.process.send_signal(signal.SIGTERM)
        assert daemon.process.wait(15) == 0
        time.sleep(0.5)
        logger.send_signal(signal.SIGTERM)
        assert logger.wait(15) == 0, logger.stderr.read()[-2000:]
    finally:
        if logger.poll() is None:
            logger.kill()
    published = {m.seq for _, m in watcher.received if isinstance(m, protocol.Result)}
    records = [json.loads(line) for path in sorted(out.rglob("*.jsonl")) for line in path.read_text().splitlines()]
    logged = {r["seq"] for r in records if r.get("kind", "result") == "result" and "seq" in r}
    assert logged, "the logger wrote nothing"
    since_subscribed = {seq for seq in published if seq >= min(logged)}
    assert since_subscribed <= logged, sorted(since_subscribed - logged)[:20]
    assert max(logged) == max(published), "the last results before shutdown reached the log"
    print(f"logger: {len(logged)} results on disk after SIGTERM, last seq {max(logged)} = last published")
