"""SIGTERM: capture stops, frames in flight finish, everything exits and leaves nothing behind."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time

from emotiond.core.procfs import descendants

from support.daemon import EMOTIOND, REPO, wait_for

STOP_TIMEOUT_SECONDS = 15.0  # how long the test waits; the service unit allows 5 s (docs/reliability.md)


def test_sigterm_finishes_in_flight_frames_and_leaves_nothing(start_daemon, watch, videos, default_model):
    daemon = start_daemon("--source", f"tv={videos['one_face']}", "--loop")  # file mode: every frame counts
    watcher = watch(daemon.results_endpoint)
    daemon.wait_for(lambda: len(watcher.results()) >= 30, 90, what="results flowing")
    children = descendants(daemon.process.pid)
    assert len(children) >= 4, children  # proxy, capture, two workers (plus the resource tracker)

    sent = time.monotonic()
    daemon.process.send_signal(signal.SIGTERM)
    code = daemon.process.wait(STOP_TIMEOUT_SECONDS)
    print(f"SIGTERM to exit: {(time.monotonic() - sent) * 1000:.0f} ms")
    assert code == 0, daemon.log()[-2000:]

    # capture names the last frame it handed to a worker; that frame's result, and every one before it since
    # the watcher subscribed, must have been published before the daemon exited
    last = re.search(r"last frame dispatched: tv (\d+)", daemon.log())
    assert last, daemon.log()[-2000:]
    last_dispatched = int(last.group(1))
    wait_for(lambda: any(r.seq == last_dispatched for r in watcher.results()), 5,
             what=f"the result of frame {last_dispatched}, the last one dispatched")
    seqs = sorted(r.seq for r in watcher.results())
    first = seqs[0]
    assert seqs == list(range(first, last_dispatched + 1)), "a frame handed to a worker was never published"
    assert "frames in flight unfinished: 0" in daemon.log(), daemon.log()[-2000:]
    # Python's resource tracker (started by the spawn context) exits on its own once the supervisor has gone
    wait_for(lambda: not [pid for pid in children if _alive(pid)], 5, what="every child to exit (orphans left)")
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
    daemon = start_daemon("--source", f"tv={videos['one_face']}", "--loop")
    watcher = watch(daemon.results_endpoint, ("result",))
    out = tmp_path / "log"
    logger = subprocess.Popen([*EMOTIOND, "log", "--out", str(out), "--fsync-seconds", "5"], cwd=REPO,
                              env=daemon.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        # both subscribers receive results (the logger's file grows), so both subscriptions are in place
        daemon.wait_for(lambda: len(watcher.results()) >= 30 and _logged(out), 90,
                        what="results reaching the watcher and the logger")
        daemon.process.send_signal(signal.SIGTERM)
        assert daemon.process.wait(STOP_TIMEOUT_SECONDS) == 0
        last_dispatched = int(re.search(r"last frame dispatched: tv (\d+)", daemon.log()).group(1))
        wait_for(lambda: last_dispatched in _logged(out) or logger.poll() is not None, 10,
                 what="the logger to write the last result")
        logger.send_signal(signal.SIGTERM)
        assert logger.wait(15) == 0, logger.stderr.read()[-2000:]
    finally:
        if logger.poll() is None:
            logger.kill()
            logger.wait(5)
        logger.stderr.close()
    published = {r.seq for r in watcher.results()}
    logged = _logged(out)
    assert logged, "the logger wrote nothing"
    since_subscribed = {seq for seq in published if seq >= min(logged)}
    assert since_subscribed <= logged, sorted(since_subscribed - logged)[:20]
    assert max(logged) == max(published) == last_dispatched, "the last results before shutdown reached the log"
    print(f"logger: {len(logged)} results on disk after SIGTERM, last seq {max(logged)} = last dispatched")


def _logged(out) -> set[int]:
    """Seq numbers of the results in the logger's files (complete lines only: it may be writing)."""
    lines = [line for path in sorted(out.rglob("*.jsonl")) for line in path.read_text().splitlines()]
    return {r["seq"] for r in (json.loads(line) for line in lines if line.endswith("}"))
            if r.get("kind", "result") == "result" and "seq" in r}
