"""``emotiond privacy notice`` (the sign a deployer shows) and ``emotiond privacy forget`` (erasure everywhere).

Only argparse at import time: the command line imports this module to build its parser; handlers import their
modules lazily, so ``emotiond --help`` stays instant.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from emotiond.clients.history.cli import DATABASE
from emotiond.core.errors import UsageError
from emotiond.daemon.flags import CONFIG, add_command, settings_from_args


def cmd_privacy(args: argparse.Namespace) -> int:
    return {"notice": cmd_notice, "forget": cmd_forget}[args.privacy_command](args)


def cmd_notice(args: argparse.Namespace) -> int:
    from emotiond.clients.privacy.notice import build_notice, render_html, render_text

    notice = build_notice(settings_from_args(args))
    sys.stdout.write(render_html(notice) if args.format == "html" else render_text(notice))
    return 0


def _between(args: argparse.Namespace) -> tuple[float, float] | None:
    from emotiond.clients.history.times import parse_time

    if args.between is None:
        return None
    now = time.time()
    between = (parse_time(args.between[0], now, "--between"), parse_time(args.between[1], now, "--between"))
    if between[0] > between[1]:
        raise UsageError("--between A B: A must not be after B")
    return between


def _forget_history(args: argparse.Namespace, between: tuple[float, float] | None) -> dict[str, Any]:
    """Erase from the history; with ``--history-track``, first learn that row's camera and bus id, so the log
    files lose the same track."""
    from sqlalchemy import exc

    from emotiond.clients.history.forget import forget
    from emotiond.clients.history.store import database_url, describe_error, open_store
    from emotiond.clients.privacy.history import forget_in_history, row_track

    settings = settings_from_args(args)
    url = database_url(settings.history)
    if url.drivername.startswith("sqlite") and url.database and not Path(url.database).exists():
        if args.history_track is not None:
            raise UsageError(f"--history-track: no history database at {url.database}")
        return {"skipped": f"no history database at {url.database}"}
    store = open_store(settings)
    try:
        if args.history_track is not None:
            args.camera, args.track = row_track(store, args.history_track)
            return forget(store, None, None, args.history_track)
        return forget_in_history(store, args.camera, between, args.track)
    except exc.SQLAlchemyError as error:
        raise UsageError(f"history database: {describe_error(error)}") from None
    finally:
        store.close()


def cmd_forget(args: argparse.Namespace) -> int:
    """Erase from the history and the given log folders; print what went (JSON with --json)."""
    from emotiond.clients.privacy.logs import forget_in_logs
    from emotiond.core.protocol import CAMERA_NAME_RE

    named = [args.between is not None, args.track is not None, args.history_track is not None]
    if sum(named) != 1:
        raise UsageError("give one of --between A B (with --camera NAME, or for every camera), --track ID or "
                         "--history-track ID")
    if args.history_track is not None and args.no_history:
        raise UsageError("--history-track reads the history: drop --no-history")
    if args.camera is not None and not CAMERA_NAME_RE.match(args.camera):
        raise UsageError(f"--camera {args.camera[:70]!r} is not a camera name (letters, digits, _ and -)")
    folders = list(args.logs or ())
    for folder in folders:
        if not folder.is_dir():
            raise UsageError(f"--logs {folder}: not a folder")
    between = _between(args)
    history = {"skipped": "--no-history"} if args.no_history else _forget_history(args, between)
    logs = forget_in_logs(folders, args.camera, between, args.track) if folders else {"skipped": "no --logs"}
    report = {"history": history, "logs": logs}
    if args.json:
        json.dump(report, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    if "skipped" in history:
        print(f"history: skipped ({history['skipped']})")
    else:
        print(f"history: forgot {history['tracks']} tracks, {history['track_events']} track events and "
              f"{history['samples']} samples (minute aggregates are anonymous counts and stay)")
        if history["open_tracks_left"]:
            print(f"history: {history['open_tracks_left']} matching tracks are still open and were left; run this "
                  "again once they have ended")
    if "skipped" in logs:
        print(f"logs: skipped ({logs['skipped']})")
    else:
        print(f"logs: removed {logs['results']} results and {logs['faces']} faces, {logs['track_ends']} track ends "
              f"changed, in {logs['files_rewritten']} files")
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``emotiond privacy`` to the emotiond parser."""
    privacy = commands.add_parser("privacy", help="the privacy notice to show people filmed; erasure everywhere",
                                  description="The notice from [privacy] operator, contact and purpose, and erasure "
                                              "of a camera's time range or one track (docs/privacy.md).")
    actions = privacy.add_subparsers(dest="privacy_command", metavar="ACTION", required=True)
    notice = add_command(actions, "notice", cmd_privacy, (CONFIG,), help="print the notice (text or printable HTML)",
                         description="Print the notice a deployer shows the people a camera films: who runs it, "
                                     "what is inferred, what is kept and for how long, where images go, whom to "
                                     "contact. The web console serves the same page at /privacy.")
    notice.add_argument("--format", choices=["text", "html"], default="text", help="output format (default: text)")
    forget = add_command(actions, "forget", cmd_privacy, (CONFIG, DATABASE), help="erase from the history and logs",
                         description="Erase every track seen on a camera in a time range (--camera NAME --between "
                                     "A B), or one track (--track ID as results carry it, or --history-track ID "
                                     "as `emotiond history tracks` lists it), from the history database and the "
                                     "log folders given with --logs, and say what was removed.")
    forget.add_argument("--camera", default=None, help="only this camera (default: every camera)")
    forget.add_argument("--between", nargs=2, metavar=("A", "B"), default=None,
                        help="the range: two times (2h, 30m ago, ISO 8601, ...); every track seen in it goes, whole")
    forget.add_argument("--track", type=_positive_int, default=None,
                        help="one track, by the id results carry (track_id in `emotiond events` and the logs)")
    forget.add_argument("--history-track", type=_positive_int, default=None,
                        help="one track, by its id in `emotiond history tracks`")
    forget.add_argument("--logs", type=Path, action="append", default=None,
                        help="a folder written by `emotiond log` (repeatable)")
    forget.add_argument("--no-history", action="store_true", help="leave the history database alone")
    forget.add_argument("--json", action="store_true", help="print the report as JSON")
