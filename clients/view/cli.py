"""``emotiond view``: the live overlay window as a command.

Only argparse at import time: the command line imports this module to build its parser; handlers import their
modules lazily, so ``emotiond --help`` stays instant.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from emotiond.daemon.flags import CONFIG, CONNECTION, add_command, positive_float, settings_from_args


def cmd_view(args: argparse.Namespace) -> int:
    from emotiond.clients.messages import MessagePicker, load_messages
    from emotiond.clients.view.feed import LiveFeed
    from emotiond.clients.view.viewer import ViewerModel, run_viewer
    from emotiond.core.listen import writable_folder

    settings = settings_from_args(args)
    writable_folder("snapshots", args.snapshots, "--snapshots", create=False)  # made at the first snapshot
    picker = MessagePicker(load_messages(args.messages))
    feed = LiveFeed(args.connect or settings.endpoint("results"), settings, args.camera)
    model = ViewerModel(picker, camera=args.camera, waiting_after=args.waiting_after)
    return run_viewer(feed, model, args.snapshots, fullscreen=args.fullscreen)


def register(commands: argparse._SubParsersAction) -> None:
    view = add_command(commands, "view", cmd_view, (CONNECTION, CONFIG),
                       help="live window with faces, emotions and scores",
                       description="Show one camera's frames with boxes, labels, score bars, a HUD and a message "
                                   "line. Keys: q/Esc quit, p pause, s snapshot, f fullscreen.")
    view.add_argument("--camera", default=None, help="camera to show (default: the first that sends frames)")
    view.add_argument("--snapshots", type=Path, default=Path("snapshots"),
                      help="folder for snapshots taken with s (default: ./snapshots)")
    view.add_argument("--messages", type=Path, default=None, help="messages JSON (default: config/messages.json)")
    view.add_argument("--fullscreen", action="store_true", help="start in fullscreen")
    view.add_argument("--waiting-after", type=positive_float, default=2.0,
                      help="seconds without frames before showing 'waiting for daemon' (default: 2)")
