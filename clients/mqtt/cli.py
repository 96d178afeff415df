"""``emotiond mqtt``: the MQTT bridge as a command of its own (``emotiond run`` starts it as a role instead).

Only argparse at import time: the command line imports this module to build its parser.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def cmd_mqtt(args: argparse.Namespace) -> int:
    # The bridge keeps its metrics in its own registry; a multiprocess folder inherited from the daemon's
    # environment would make prometheus_client write files there instead.
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    from emotiond.clients.mqtt.role import run_command
    from emotiond.core.settings import load_settings
    from emotiond.daemon.commands import settings_from_args

    settings = settings_from_args(args)
    if args.url is not None:
        settings = load_settings(None, {**settings.model_dump(mode="json"),
                                        "mqtt": {**settings.mqtt.model_dump(mode="json"), "url": args.url}})
    return run_command(settings, args.connect, args.metrics_host, args.metrics_port)


def register(commands: argparse._SubParsersAction) -> None:
    mqtt = commands.add_parser(
        "mqtt", help="publish events, states and Home Assistant discovery to an MQTT broker",
        description="Bridge the results bus to an MQTT broker ([mqtt] in the config): PREFIX/events (Frigate-shaped "
                    "new/update/end), retained PREFIX/CAMERA/faces, /emotion and /EMOTION states, PREFIX/available "
                    "(with a last will), PREFIX/stats and Home Assistant discovery. Runs until SIGTERM or Ctrl-C; "
                    "`emotiond run` starts it itself when [mqtt] enabled = true. See docs/mqtt.md.")
    mqtt.add_argument("--connect", default=None, help="results endpoint (default: the local daemon's)")
    mqtt.add_argument("--config", type=Path, default=None, help="TOML config file")
    mqtt.add_argument("--runtime-dir", type=Path, default=None, help="runtime folder of the daemon")
    mqtt.add_argument("--url", default=None, help="broker, mqtt://HOST[:PORT] or mqtts://HOST[:PORT] "
                                                  "(default: [mqtt] url, mqtt://127.0.0.1:1883)")
    mqtt.add_argument("--metrics-port", type=int, default=None, help="serve /metrics on this port (0: any free)")
    mqtt.add_argument("--metrics-host", default="127.0.0.1", help="bind address of /metrics")
    mqtt.set_defaults(handler=cmd_mqtt)
