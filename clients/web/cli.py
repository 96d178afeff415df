"""``emotiond web``: the console as its own process, beside a running daemon."""

from __future__ import annotations

import argparse
from pathlib import Path

from emotiond.daemon.flags import CONFIG, CONNECTION, Flag, FlagGroup, add_command, settings_from_args

SERVE = FlagGroup("web", (
    Flag("--host", "web.host", "bind address (default: [web] host, 127.0.0.1)"),
    Flag("--port", "web.port", "port (default: [web] port, 8108; 0: any free port)", type=int),
))


def cmd_web(args: argparse.Namespace) -> int:
    from emotiond.clients.messages import load_messages
    from emotiond.clients.web.server import run_standalone

    return run_standalone(settings_from_args(args), args.connect, load_messages(args.messages))


def register(commands: argparse._SubParsersAction) -> None:
    web = add_command(
        commands, "web", cmd_web, (CONNECTION, CONFIG, SERVE),
        help="web console and HTTP API: live annotated cameras, events, stats, photo upload",
        description="Serve the web console and its HTTP API (MJPEG streams, latest.jpg, events, stats, photo "
                    "upload, a WebSocket of results). Binds 127.0.0.1 by default; any other address needs "
                    "[web] token (or EMOTIOND_WEB__TOKEN), never given on the command line.")
    web.add_argument("--messages", type=Path, default=None, help="messages JSON (default: config/messages.json)")
