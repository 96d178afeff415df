"""Soak run: the daemon on a looping video while a worker is SIGKILLed every N seconds.

Prints RSS and open file descriptors of the whole process tree over time and, in file mode (the default), checks
that no frame was lost: every sequence number from 0 to the last one dispatched must come back as a result,
in spite of the kills (frames held by a killed worker are re-sent).

    .venv/bin/python benchmarks/soak.py                 # short form, 75 s, a kill every 20 s
    .venv/bin/python benchmarks/soak.py --long          # 30 minutes, a kill every 60 s
    .venv/bin/python benchmarks/soak.py --json out.json # also write the samples

Exit status 0 when no frame was lost and RSS and descriptors stayed bounded, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from emotiond.benchmarks import harness
from emotiond.core import procfs
from emotiond.core.lifecycle import exit_on_sigterm

log = logging.getLogger("soak")
RSS_GROWTH_LIMIT = 1.25  # last sample over the first one after warm-up
FD_GROWTH_LIMIT = 16


@dataclass
class Sample:
    elapsed_s: float
    rss_mb: float
    fds: int
    processes: int
    results: int
    kills: int


class ResultCollector(threading.Thread):
    """Subscribes to results and keeps the sequence numbers seen."""

    def __init__(self, endpoint: str):
        super().__init__(daemon=True)
        self.endpoint = endpoint
        self.seqs: set[int] = set()
        self.count = 0
        self.stop = threading.Event()

    def run(self) -> None:
        import zmq

        from emotiond.core import bus, protocol
        from emotiond.core.settings import Settings

        sock = bus.results_subscriber(self.endpoint, [b"result."], Settings(), ctx=zmq.Context())
        try:
            while not self.stop.is_set():
                if sock.poll(100):
                    message = protocol.decode(sock.recv_multipart())
                    if isinstance(message, protocol.Result):
                        self.seqs.add(message.seq)
                        self.count += 1
        finally:
            sock.close(linger=0)


def _video(folder: Path) -> Path:
    from emotiond.capture import synthetic

    return synthetic.write_video(folder / "soak.mp4", synthetic.SceneSpec(faces=2, frames=90))


def soak(duration: float, kill_every: float, workers: int, mode: str, sample_every: float) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="emotiond-soak-"))
    video = _video(folder)
    runtime = folder / "run"
    log_path = folder / "daemon.log"
    env = dict(os.environ, EMOTIOND_BUS__RUNTIME_DIR=str(runtime), PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="2",
               # the collector must not be the one losing results: give the subscriber side ample buffer
               EMOTIOND_BUS__HIGH_WATER_MARK="10000")
    args = ["--source", f"soak={video}", "--loop", "--workers", str(workers)]
    if mode == "live":
        args.append("--realtime")
    daemon = harness.start(args, env, log_path, metrics_port=0)
    collector = ResultCollector(f"ipc://{runtime / 'results'}.sock")
    collector.start()
    samples: list[Sample] = []
    kills = 0
    try:
        deadline = time.monotonic() + 120
        while log_path.read_text().count("ready (model") < workers:
            if daemon.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"daemon did not start:\n{log_path.read_text()[-2000:]}")
            time.sleep(0.2)
        started = time.monotonic()
        next_kill, next_sample = started + kill_every, started
        victim = 0
        while (now := time.monotonic()) < started + duration:
            if now >= next_sample:
                tree = [daemon.pid, *procfs.descendants(daemon.pid)]
                samples.append(Sample(round(now - started, 1), round(sum(procfs.rss_kb(p) for p in tree) / 1024, 1),
                                      sum(procfs.fd_count(p) for p in tree), len(tree), collector.count, kills))
                print(f"{samples[-1].elapsed_s:7.1f}s  rss {samples[-1].rss_mb:8.1f} MB  fds {samples[-1].fds:4d}  "
                      f"procs {samples[-1].processes:2d}  results {samples[-1].results:7d}  kills {kills}", flush=True)
                next_sample += sample_every
            if now >= next_kill:
                name = f"w{victim % workers + 1}"
                victim += 1
                pid = daemon.child_pids().get(name)
                if pid:
                    os.kill(pid, signal.SIGKILL)
                    kills += 1
                next_kill += kill_every
            time.sleep(0.1)
    finally:
        code = daemon.stop(30)
        time.sleep(0.5)
        collector.stop.set()
        collector.join(2)
    return _verdict(samples, collector.seqs, kills, code, mode, log_path)


def _verdict(samples: list[Sample], seqs: set[int], kills: int, code: int, mode: str, log_path: Path) -> dict:
    steady = [s for s in samples if s.elapsed_s >= min(20.0, samples[-1].elapsed_s / 3)] or samples
    rss_growth = steady[-1].rss_mb / steady[0].rss_mb
    fd_growth = max(s.fds for s in steady) - steady[0].fds
    missing = sorted(set(range(max(seqs) + 1)) - seqs) if seqs else []
    summary = {
        "mode": mode, "kills": kills, "exit_code": code, "results": len(seqs),
        "highest_seq": max(seqs) if seqs else -1, "missing_frames": len(missing) if mode == "file" else None,
        "missing_examples": missing[:20] if mode == "file" else [],
        "rss_mb_first_steady": steady[0].rss_mb, "rss_mb_last": steady[-1].rss_mb,
        "rss_mb_max": max(s.rss_mb for s in samples), "rss_growth": round(rss_growth, 3),
        "fds_first_steady": steady[0].fds, "fds_max_growth": fd_growth,
        "samples": [asdict(s) for s in samples], "log": str(log_path),
    }
    summary["ok"] = bool(code == 0 and kills > 0 and seqs and (mode != "file" or not missing)
                         and rss_growth <= RSS_GROWTH_LIMIT and fd_growth <= FD_GROWTH_LIMIT)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long", action="store_true", help="30 minutes with a kill every 60 s")
    parser.add_argument("--duration", type=float, default=None, help="seconds (default 75, or 1800 with --long)")
    parser.add_argument("--kill-every", type=float, default=None, help="seconds between worker kills")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--mode", choices=["file", "live"], default="file",
                        help="file: loop without loss and check every frame; live: realtime pacing")
    parser.add_argument("--sample-every", type=float, default=None, help="seconds between RSS/fd samples")
    parser.add_argument("--json", type=Path, default=None, help="write the summary and samples here")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    duration = args.duration or (1800.0 if args.long else 75.0)
    kill_every = args.kill_every or (60.0 if args.long else 20.0)
    sample_every = args.sample_every or (30.0 if args.long else 5.0)
    logging.basicConfig(level=logging.INFO)
    summary = soak(duration, kill_every, args.workers, args.mode, sample_every)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "samples"}, indent=2))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
