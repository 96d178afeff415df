"""``emotiond bench``: the same-run comparison with fer (benchmarks/bench.py); ``--quick`` is its pass/fail form."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_bench(args: argparse.Namespace) -> int:
    from emotiond.benchmarks import bench

    argv = ["--quick"] if args.quick else []
    for flag, value in (("--frames", args.frames), ("--out", args.out), ("--fer-from", args.fer_from),
                        ("--config", args.config),
                        ("--workers", args.workers), ("--model", args.model), ("--backend", args.backend)):
        if value is not None:
            argv += [flag, str(value)]
    return bench.main(argv)


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "bench", help="benchmark against the fer package (prints a table; exit 1 when a limit fails)",
        description="Same-run comparison with fer 25.10.3 (benchmarks/bench.py). Exit status 1 when a frame is "
                    "lost, recall or agreement with fer is below 0.95, or emotiond is slower than fer. The daemon "
                    "honours the usual settings: --config (or $EMOTIOND_CONFIG), EMOTIOND_* variables, flags.")
    parser.add_argument("--quick", action="store_true",
                        help="60 frames per video, file mode only (a minute or two); writes no files unless --out")
    parser.add_argument("--frames", type=int, default=None, help="frames per test video (default 300; 60 quick)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for latest.md/.json, or quick.md/.json (default benchmarks/results)")
    parser.add_argument("--fer-from", type=Path, default=None, metavar="JSON",
                        help="reuse fer's figures from an earlier run's latest.json/quick.json (same videos, "
                             "checked by hash) instead of running fer again")
    parser.add_argument("--config", type=Path, default=None, help="the daemon's TOML config file")
    parser.add_argument("--workers", type=int, default=None, help="daemon workers (0: one per core)")
    parser.add_argument("--model", default=None, help="model bundle folder or name in the models cache")
    parser.add_argument("--backend", choices=["litert", "tf"], default=None, help="classifier backend")
    parser.set_defaults(handler=cmd_bench)
