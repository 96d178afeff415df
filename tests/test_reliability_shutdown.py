"""SIGTERM: capture stops, frames in flight finish, everything exits within 5 s and leaves nothing behind."""

from __future__ import annotations

import signal
import time

from daemon import protocol
from tests.conftest import descendants, wait_for

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
