"""``emotiond mqtt``: the MQTT bridge as a command of its own (``emotiond run`` starts it as a role instead).

Only argparse at import time: the command line imports this module to build its parser.
"""

from __future__ import annotations

import argparse
import os

from emotiond.core.metrics import ENV_DIR
from emotiond.daemon.flags import CONFIG, CONNECTION, OWN_METRICS, Flag, FlagGroup, add_command, settings_from_args

BROKER = FlagGroup("broker", (
    Flag("--url", "mqtt.url", "broker, mqtt://HOST[:PORT] or mqtts://HOST[:PORT] (default: [mqtt] url, "
                              "mqtt://127.0.0.1:1883)"),
))


def cmd_mqtt(args: argparse.Namespace) -> int:
    # The bridge keeps its metrics in its own registry; a multiprocess folder inherited from the daemon's
    # environment would make prometheus_client write files there instead.
    os.environ.pop(ENV_DIR, None)
    from emotiond.clients.mqtt.role import run_command

    return run_command(settings_from_args(args), args.connect, args.metrics_host, args.metrics_port)


def register(commands: argparse._SubParsersAction) -> None:
    add_command(
        commands, "mqtt", cmd_mqtt, (CONNECTION, CONFIG, BROKER, OWN_METRICS),
        help="publish events, states and Home Assistant discovery to an MQTT broker",
        description="Bridge the results bus to an MQTT broker ([mqtt] in the config): PREFIX/events (Frigate-shaped "
                    "new/update/end), retained PREFIX/CAMERA/faces, /emotion and /EMOTION states, PREFIX/available "
                    "(with a last will), PREFIX/stats and Home Assistant discovery. Runs until SIGTERM or Ctrl-C; "
                    "`emotiond run` starts it itself when [mqtt] enabled = true. See docs/mqtt.md.")
