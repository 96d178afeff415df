"""``emotiond bench``: the same-run comparison with fer (benchmarks/bench.py); ``--quick`` is its pass/fail form."""

from __future__ import annotations

import argparse
from pathlib import Path

from emotiond.daemon.flags import BACKEND, CONFIG, MODEL, WORKERS, Flag, FlagGroup, add_command

# Every flag of `emotiond bench` is handed on to benchmarks/bench.py as it was given; bench.py turns the daemon
# flags into the settings of the daemon under test.
RUN = FlagGroup("bench run", (
    Flag("--quick", None, "60 frames per video in file mode and 10 s live with one camera (a minute or two); "
                          "writes no files unless --out", action="store_true"),
    Flag("--frames", None, "frames per test video (default 300; 60 quick)", type=int, default=None),
    Flag("--out", None, "folder for latest.md/.json, or quick.md/.json (default benchmarks/results)", type=Path,
         default=None),
    Flag("--fer-from", None, "reuse fer's figures from an earlier run's latest.json/quick.json (same videos, "
                             "checked by hash) instead of running fer again", type=Path, default=None, metavar="JSON"),
))
DAEMON_UNDER_TEST = FlagGroup("daemon under test", (WORKERS, MODEL, BACKEND))
HANDED_ON = (RUN, CONFIG, DAEMON_UNDER_TEST)


def cmd_bench(args: argparse.Namespace) -> int:
    from emotiond.benchmarks import bench

    return bench.main([arg for group in HANDED_ON for arg in group.argv(args)])


def register(commands: argparse._SubParsersAction) -> None:
    add_command(
        commands, "bench", cmd_bench, HANDED_ON,
        help="benchmark against the fer package (prints a table; exit 1 when a limit fails)",
        description="Same-run comparison with fer 25.10.3 (benchmarks/bench.py). Exit status 1 when a frame is "
                    "lost, recall or agreement with fer is below 0.95, the ratio to fer is below 3.0x at 1 face or "
                    "2.5x at 4 faces, or one camera paced at 30 fps drops more than 2% of its frames or has a "
                    "subscriber-side p95 latency above 100 ms. The daemon honours the usual settings: --config (or "
                    "$EMOTIOND_CONFIG), EMOTIOND_* variables, flags.")
