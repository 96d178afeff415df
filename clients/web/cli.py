"""``emotiond web``: the console as its own process, beside a running daemon."""

from __future__ import annotations

import argparse
from pathlib import Path

from emotiond.core.errors import UsageError


def cmd_web(args: argparse.Namespace) -> int:
    from emotiond.clients.messages import load_messages
    from emotiond.clients.web.server import run_standalone
    from emotiond.core.settings import ConfigError, WebSettings
    from emotiond.daemon.commands import settings_from_args

    settings = settings_from_args(args)
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if overrides:
        try:
            settings.web = WebSettings.model_validate({**settings.web.model_dump(mode="json"), **overrides})
        except ValueError as exc:
            from pydantic import ValidationError

            from emotiond.core.errors import format_validation_error

            if isinstance(exc, ValidationError):
                raise ConfigError(format_validation_error(exc, "web")) from None
            raise UsageError(str(exc)) from None
    return run_standalone(settings, args.connect, load_messages(args.messages))


def register(commands: argparse._SubParsersAction) -> None:
    web = commands.add_parser(
        "web", help="web console and HTTP API: live annotated cameras, events, stats, photo upload",
        description="Serve the web console and its HTTP API (MJPEG streams, latest.jpg, events, stats, photo "
                    "upload, a WebSocket of results). Binds 127.0.0.1 by default; any other address needs "
                    "[web] token (or EMOTIOND_WEB__TOKEN), never given on the command line.")
    web.add_argument("--connect", default=None, help="results endpoint (default: the local daemon's)")
    web.add_argument("--config", type=Path, default=None, help="TOML config file ([web] section)")
    web.add_argument("--runtime-dir", type=Path, default=None, help="runtime folder of the daemon")
    web.add_argument("--host", default=None, help="bind address (default: [web] host, 127.0.0.1)")
    web.add_argument("--port", type=int, default=None, help="port (default: [web] port, 8108; 0: any free port)")
    web.add_argument("--messages", type=Path, default=None, help="messages JSON (default: config/messages.json)")
    web.set_defaults(handler=cmd_web)
