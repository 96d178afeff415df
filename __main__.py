"""``emotiond`` and ``python -m emotiond``: the command line, composed from each layer's commands."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from emotiond.benchmarks import commands as bench_commands
from emotiond.clients.analyze import cli as analyze_cli
from emotiond.clients.events import cli as events_cli
from emotiond.clients.history import cli as history_cli
from emotiond.clients.log import cli as log_cli
from emotiond.clients.mqtt import cli as mqtt_cli
from emotiond.clients.privacy import cli as privacy_cli
from emotiond.clients.roles import CLIENT_ROLES
from emotiond.clients.view import cli as view_cli
from emotiond.clients.web import cli as web_cli
from emotiond.daemon import cli, keys
from emotiond.daemon import commands as daemon_commands
from emotiond.training import commands as training_commands

COMMAND_MODULES = (daemon_commands, keys, events_cli, view_cli, log_cli, history_cli, analyze_cli, web_cli, mqtt_cli,
                   privacy_cli, training_commands, bench_commands)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(cli.build_parser(COMMAND_MODULES, CLIENT_ROLES), argv)


if __name__ == "__main__":
    sys.exit(main())
