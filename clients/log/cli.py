"""``emotiond log`` and ``emotiond log summary``.

Only argparse at import time: the command line imports this module to build its parser; handlers import their
modules lazily, so ``emotiond --help`` stays instant.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from emotiond.core.errors import UsageError
from emotiond.core.metrics import ENV_DIR
from emotiond.daemon.flags import CONFIG, CONNECTION, OWN_METRICS, add_command, positive_float, settings_from_args

log = logging.getLogger(__name__)


def cmd_log(args: argparse.Namespace) -> int:
    if args.log_command == "summary":
        return cmd_log_summary(args)
    if args.out is None:
        raise UsageError("give --out DIR (the folder for log files), or `emotiond log summary DIR`")
    if args.rotate_mb <= 0:
        raise UsageError("--rotate-mb must be positive")
    # The logger keeps its metrics in its own registry; a multiprocess folder inherited from the daemon's
    # environment would make prometheus_client write files there instead.
    os.environ.pop(ENV_DIR, None)
    from emotiond.clients.log.logger import LoggerMetrics, LoggerOptions, ResultLogger, install_signal_handlers
    from emotiond.core.listen import writable_folder

    settings = settings_from_args(args)
    writable_folder("log files", args.out, "--out")
    metrics = LoggerMetrics()
    if args.metrics_port is not None:
        metrics.serve(args.metrics_host, args.metrics_port)
    options = LoggerOptions(out=args.out, fmt=args.format, faces_only=args.faces_only, rotate_mb=args.rotate_mb,
                            fsync_seconds=args.fsync_seconds, cameras=tuple(args.camera or ()))
    logger = ResultLogger(args.connect or settings.endpoint("results"), settings, options, metrics)
    install_signal_handlers(logger)
    return logger.run()


def cmd_log_summary(args: argparse.Namespace) -> int:
    from emotiond.clients.log.summary import count_table, read_log, timeline_png

    if not args.dir.is_dir():
        raise UsageError(f"{args.dir} is not a folder")
    contents = read_log(args.dir)
    if not contents.files:
        raise UsageError(f"no .jsonl or .csv log files in {args.dir}")
    sys.stdout.write(count_table(contents))
    if contents.bad_lines:
        log.warning("%d unreadable lines skipped", contents.bad_lines)
    png = timeline_png(contents, args.png or args.dir / "summary.png", args.bin_seconds)
    print(f"timeline: {png}")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    logp = add_command(commands, "log", cmd_log, (CONNECTION, CONFIG, OWN_METRICS),
                       help="append results to rotating JSONL/CSV files; `log summary DIR` summarises them",
                       description="Append every result durably to files in --out, rotated by size and by UTC "
                                   "day, recording missed seq numbers as gaps. SIGTERM flushes and closes cleanly.")
    logp.add_argument("--out", type=Path, default=None, help="folder for the log files")
    logp.add_argument("--format", choices=["jsonl", "csv"], default="jsonl", help="file format (default: jsonl)")
    logp.add_argument("--faces-only", action="store_true", help="skip results without faces (gaps still counted)")
    logp.add_argument("--rotate-mb", type=float, default=64.0, help="start a new file past this size (default: 64)")
    logp.add_argument("--fsync-seconds", type=float, default=1.0,
                      help="fsync at most this often; 0 syncs every batch (default: 1)")
    logp.add_argument("--camera", action="append", default=None, help="only this camera (repeatable)")
    logp.set_defaults(log_command=None)
    actions = logp.add_subparsers(dest="log_command", metavar="ACTION")
    summary = actions.add_parser("summary", help="counts per emotion per camera and a PNG timeline",
                                 description="Print faces per emotion per camera and write a PNG timeline.")
    summary.add_argument("dir", type=Path, help="folder written by `emotiond log`")
    summary.add_argument("--png", type=Path, default=None, help="timeline image (default: DIR/summary.png)")
    summary.add_argument("--bin-seconds", type=positive_float, default=None,
                         help="timeline bin width (default: about 60 bins over the log)")
    summary.set_defaults(handler=cmd_log)
