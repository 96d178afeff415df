"""Flags shared by the clients' commands."""

from __future__ import annotations

import argparse
from pathlib import Path


def positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def connection_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--connect", default=None, help="results endpoint (default: the local daemon's)")
    parser.add_argument("--config", type=Path, default=None, help="TOML config file")
    parser.add_argument("--runtime-dir", type=Path, default=None, help="runtime folder of the daemon")

