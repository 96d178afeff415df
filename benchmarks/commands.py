"""``emotiond bench``: the same-run comparison with fer (benchmarks/bench.py)."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_bench(args: argparse.Namespace) -> int:
    from emotiond.benchmarks import bench

    argv = ["--frames", str(args.frames), "--workers", str(args.workers)]
    if args.out:
        argv += ["--out", str(args.out)]
    return bench.main(argv)


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("bench", help="benchmark against the fer package (prints a table)",
                                 description="Same-run comparison with fer 25.10.3 (benchmarks/bench.py).")
    parser.add_argument("--frames", type=int, default=300, help="frames per test video")
    parser.add_argument("--workers", type=int, default=0, help="daemon workers (0: automatic)")
    parser.add_argument("--out", type=Path, default=None, help="folder for latest.md and latest.json")
    parser.set_defaults(handler=cmd_bench)
