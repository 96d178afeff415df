"""The command-line frame: one parser whose subcommands each layer registers, and one way to fail.

Every user error (a ``UsageError``, ``ConfigError`` or ``BundleError``) becomes one line on stderr and exit
status 2; the list of command modules is composed at the top, in ``emotiond/__main__.py``.

Heavy imports (TensorFlow, OpenCV GUI, matplotlib) happen inside command handlers, so ``emotiond
--help`` and ``emotiond events`` start instantly.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from types import ModuleType

from emotiond.core.errors import UsageError
from emotiond.core.lifecycle import configure_logging
from emotiond.daemon.flags import GLOBAL, LOG_LEVEL
from emotiond.daemon.supervisor import ClientRole

EXIT_USAGE = 2


def build_parser(command_modules: Sequence[ModuleType], client_roles: Sequence[ClientRole] = ()
                 ) -> argparse.ArgumentParser:
    """The parser of every command module; ``client_roles`` are the clients ``emotiond run`` may start."""
    parser = argparse.ArgumentParser(
        prog="emotiond",
        description="Real-time facial emotion recognition daemon and tools.",
    )
    GLOBAL.add_to(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in command_modules:
        module.register(commands)
    parser.set_defaults(client_roles=tuple(client_roles))
    return parser


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ chatter off the console
    args = parser.parse_args(argv)
    configure_logging(LOG_LEVEL.value(args) or "INFO")
    try:
        return int(args.handler(args) or 0)
    except UsageError as exc:
        for line in str(exc).splitlines():
            print(f"emotiond {args.command}: {line}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
