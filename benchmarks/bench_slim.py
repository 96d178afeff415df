"""What leaving TensorFlow out of the install saves: size, worker memory and start-up time, slim against full.

Builds two venvs from the same wheels: ``slim`` (``pip install emotiond``, no TensorFlow) and ``full``
(``emotiond[convert]``, what every install was before). The default model is packed here and unpacked into each
venv's own models folder with ``emotiond models unpack``. Then, for each case, ``emotiond run --source demo --loop``
starts cold, and the benchmark measures the time from starting the process to the first result on the bus, and
the worker's resident memory once it serves. ``full --backend tf`` (the Keras model under tf.function) is the
third case: the memory and start-up that serving with TensorFlow itself costs.

    .venv/bin/python benchmarks/bench_slim.py                      # wheels from build/image/wheels (make image)
    .venv/bin/python benchmarks/bench_slim.py --wheels DIR --runs 3

Prints one table; the baseline is the full install, measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import zmq

from emotiond.benchmarks.harness import Daemon, free_port
from emotiond.clients.subscribe import Subscription
from emotiond.core import procfs, protocol
from emotiond.core.settings import DEFAULT_MODEL_NAME

REPO = Path(__file__).resolve().parents[1]
DEFAULT_WHEELS = REPO / "build" / "image" / "wheels"
FIRST_RESULT_TIMEOUT = 300.0
SERVE_SECONDS = 5.0  # the worker serves this long before its memory is read


@dataclass
class Install:
    name: str
    venv: Path
    bytes: int

    @property
    def emotiond(self) -> str:
        return str(self.venv / "bin" / "emotiond")


def folder_bytes(path: Path) -> int:
    return sum(f.lstat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def build_venv(root: Path, name: str, requirement: str, wheels: Path, archive: Path) -> Install:
    venv = root / name
    python = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    subprocess.run([str(python), "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", "--no-index",
                    "--find-links", str(wheels), requirement], check=True, timeout=1200)
    size = folder_bytes(venv)
    subprocess.run([str(venv / "bin" / "emotiond"), "models", "unpack", str(archive)], check=True, timeout=120,
                   env=environment(venv, root / "runtime"), stdout=subprocess.DEVNULL)
    return Install(name, venv, size)


def environment(venv: Path, runtime: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMOTIOND_", "VIRTUAL_ENV", "PYTHONPATH"))}
    env.update({"EMOTIOND_MODELS__DIR": str(venv / "models"), "EMOTIOND_BUS__RUNTIME_DIR": str(runtime),
                "TF_CPP_MIN_LOG_LEVEL": "2"})
    return env


def start_to_first_result(install: Install, root: Path, extra: list[str]) -> tuple[float, int]:
    """Seconds from starting ``emotiond run`` to its first result, and the worker's RSS (kB) while serving."""
    runtime = Path(tempfile.mkdtemp(prefix="rt-", dir=root))
    log_path = runtime.with_suffix(".log")
    with zmq.Context() as ctx, Subscription(f"ipc://{runtime}/results.sock", (), kinds=("result",),
                                            ctx=ctx) as subscription:
        started = time.monotonic()
        with log_path.open("w") as log:
            process = subprocess.Popen([install.emotiond, "run", "--source", "demo", "--loop", "--workers", "1",
                                        "--metrics-port", str(free_port()), *extra],
                                       env=environment(install.venv, runtime), stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        daemon = Daemon(process, log_path)
        try:
            first = None
            while first is None:
                if time.monotonic() - started > FIRST_RESULT_TIMEOUT or process.poll() is not None:
                    raise SystemExit(f"{install.name}: no result:\n{daemon.log()[-2000:]}")
                if any(isinstance(m, protocol.Result) for m in subscription.receive(100)):
                    first = time.monotonic() - started
            worker = daemon.wait_child("w1")
            time.sleep(SERVE_SECONDS)
            return first, procfs.rss_kb(worker)
        finally:
            daemon.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheels", type=Path, default=DEFAULT_WHEELS,
                        help="wheels of emotiond[convert] and its dependencies (default: what make image built)")
    parser.add_argument("--runs", type=int, default=2, help="cold starts per case (the median is shown)")
    args = parser.parse_args(argv)
    if not any(args.wheels.glob("emotiond-*.whl")):
        raise SystemExit(f"no emotiond wheel in {args.wheels}: run `make image` (it builds them) or give --wheels")
    with tempfile.TemporaryDirectory(prefix="bench-slim-") as tmp:
        root = Path(tmp)
        archive = root / "models.tar.gz"
        subprocess.run([sys.executable, "-m", "emotiond", "models", "pack", DEFAULT_MODEL_NAME, "--out",
                        str(archive)], check=True, timeout=120, stdout=subprocess.DEVNULL)
        slim = build_venv(root, "slim", "emotiond", args.wheels, archive)
        full = build_venv(root, "full", "emotiond[convert]", args.wheels, archive)
        cases = [("slim", slim, []), ("full", full, []), ("full --backend tf", full, ["--backend", "tf"])]
        rows = []
        for label, install, extra in cases:
            runs = [start_to_first_result(install, root, extra) for _ in range(args.runs)]
            rows.append((label, install, statistics.median(r[0] for r in runs),
                         statistics.median(r[1] for r in runs) / 1024))
    base_start, base_rss = rows[1][2], rows[1][3]
    print(f"emotiond install slim vs full ({os.cpu_count()} cores, median of {args.runs} cold starts; "
          "`emotiond run --source demo --workers 1`)")
    print(f"{'case':<20} {'install MB':>10} {'x full':>7} {'first result s':>15} {'x full':>7} "
          f"{'worker RSS MB':>14} {'x full':>7}")
    for label, install, start, rss in rows:
        print(f"{label:<20} {install.bytes / 1e6:>10.0f} {install.bytes / full.bytes:>7.2f} {start:>15.1f} "
              f"{start / base_start:>7.2f} {rss:>14.0f} {rss / base_rss:>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
