"""The ``emotiond`` command line: one parser, with subcommands registered by each package.

Heavy imports (TensorFlow, OpenCV GUI, matplotlib) happen inside command handlers, so ``emotiond
--help`` and ``emotiond events`` start instantly.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from daemon.errors import UsageError

COMMAND_MODULES = ("daemon.commands", "daemon.security", "clients.commands", "training.commands")
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emotiond",
        description="Real-time facial emotion recognition daemon and tools.",
    )
    parser.add_argument("--log-level", default=None, choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="log level (default: from config, INFO)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(commands)
    return parser


def configure_logging(level: str | None) -> None:
    logging.basicConfig(
        level=getattr(logging, level or "INFO"),
        format="%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def main(argv: Sequence[str] | None = None) -> int:
    from daemon.settings import ConfigError
    from workers.bundle import BundleError

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ chatter off the console
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    try:
        return int(args.handler(args) or 0)
    except (UsageError, ConfigError, BundleError) as exc:
        for line in str(exc).splitlines():
            print(f"emotiond {args.command}: {line}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
