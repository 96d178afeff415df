"""``emotiond`` subcommands provided by the clients package: events, view, log, log summary, analyze.

Handlers import their modules lazily, so ``emotiond --help`` and ``emotiond events`` stay instant.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from emotiond.clients import mqtt_cli
from emotiond.clients.web import cli as web_cli
from emotiond.daemon.core.errors import UsageError

log = logging.getLogger(__name__)


def cmd_events(args: argparse.Namespace) -> int:
    """Print one JSON object per result, flushing each line."""
    from emotiond.clients.changes import ChangeDetector
    from emotiond.clients.subscribe import subscribe
    from emotiond.daemon.commands import settings_from_args
    from emotiond.daemon.core import protocol

    settings = settings_from_args(args)
    changes = ChangeDetector() if args.changes else None
    printed = 0
    seen: set[str] = set()
    ended: set[str] = set()
    for message in subscribe(args.connect, args.camera, settings=settings,
                             include_status=args.status or args.until_eos, timeout=args.timeout):
        seen.add(message.camera)
        if isinstance(message, protocol.Status):
            if message.state == "eos":
                ended.add(message.camera)
            if args.status:
                sys.stdout.write(json.dumps({"status": message.to_dict()}) + "\n")
                sys.stdout.flush()
            if args.until_eos and ended >= (set(args.camera or ()) or seen):
                return 0
            continue
        if args.faces_only and not message.faces:
            continue
        lines = list(changes.feed(message)) if changes else [message.to_dict()]
        for line in lines:
            sys.stdout.write(json.dumps(line, separators=(",", ":")) + "\n")
            sys.stdout.flush()
            printed += 1
            if args.count and printed >= args.count:
                return 0
    return 0


def cmd_view(args: argparse.Namespace) -> int:
    from emotiond.clients.feed import LiveFeed
    from emotiond.clients.messages import MessagePicker, load_messages
    from emotiond.clients.viewer import ViewerModel, run_viewer
    from emotiond.daemon.commands import settings_from_args

    settings = settings_from_args(args)
    picker = MessagePicker(load_messages(args.messages))
    feed = LiveFeed(args.connect or settings.endpoint("results"), settings, args.camera)
    model = ViewerModel(picker, camera=args.camera, waiting_after=args.waiting_after)
    return run_viewer(feed, model, args.snapshots, fullscreen=args.fullscreen)


def cmd_log(args: argparse.Namespace) -> int:
    if args.log_command == "summary":
        return cmd_log_summary(args)
    if args.out is None:
        raise UsageError("give --out DIR (the folder for log files), or `emotiond log summary DIR`")
    if args.rotate_mb <= 0:
        raise UsageError("--rotate-mb must be positive")
    # The logger keeps its metrics in its own registry; a multiprocess folder inherited from the daemon's
    # environment would make prometheus_client write files there instead.
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    from emotiond.clients.logger import LoggerOptions, ResultLogger, install_signal_handlers
    from emotiond.daemon.commands import settings_from_args

    settings = settings_from_args(args)
    options = LoggerOptions(out=args.out, fmt=args.format, faces_only=args.faces_only, rotate_mb=args.rotate_mb,
                            fsync_seconds=args.fsync_seconds, cameras=tuple(args.camera or ()))
    logger = ResultLogger(args.connect or settings.endpoint("results"), settings, options)
    install_signal_handlers(logger)
    if args.metrics_port is not None:
        logger.metrics.serve(args.metrics_host, args.metrics_port)
    return logger.run()


def cmd_log_summary(args: argparse.Namespace) -> int:
    from emotiond.clients.summary import count_table, read_log, timeline_png

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


def cmd_analyze(args: argparse.Namespace) -> int:
    from emotiond.clients.analyze import Analysis, AnalyzeOptions, expand_inputs
    from emotiond.clients.analyze_unit import settings_payload
    from emotiond.clients.engines import make_engine
    from emotiond.daemon.commands import settings_from_args
    from emotiond.daemon.core import bundle as bundles

    if args.format == "csv" and args.out is None:
        raise UsageError("--format csv writes one CSV per video into --out DIR; give --out")
    if args.resume and args.out is None:
        raise UsageError("--resume looks for complete outputs in --out DIR; give --out")
    if args.scheduler is not None and args.engine != "dask":
        raise UsageError("--scheduler needs --engine dask")
    settings = settings_from_args(args)
    model = bundles.resolve(settings.classifier.model, settings.models.dir)
    if not model.exists():
        raise UsageError(f"model {settings.classifier.model!r} not found; run `emotiond models fetch` for the "
                         "default model")
    inputs = list(expand_inputs(args.paths))
    if not inputs:
        raise UsageError("no images or videos found in the given paths")
    payload = settings_payload(settings)
    options = AnalyzeOptions(out=args.out, fmt=args.format, progress=args.progress, resume=args.resume,
                             chunk_seconds=args.chunk_seconds, landmarks=args.landmarks)
    analysis = Analysis(settings, options, lambda: make_engine(
        args.engine, payload, args.engine_workers, args.scheduler, args.connect_timeout, settings.logging.level))
    return analysis.run(inputs)


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def register(commands: argparse._SubParsersAction) -> None:
    """Add this package's subcommands to the emotiond parser."""
    events = commands.add_parser("events", help="print results as JSON lines",
                                 description="Subscribe to the daemon and print one JSON result per line.")
    events.add_argument("--connect", default=None, help="results endpoint (default: the local daemon's)")
    events.add_argument("--camera", action="append", default=None, help="only this camera (repeatable)")
    events.add_argument("--faces-only", action="store_true", help="skip results without faces")
    events.add_argument("--changes", action="store_true",
                        help="print only track events: appeared, disappeared, smoothed emotion changed")
    events.add_argument("--count", type=int, default=0, help="exit after this many events")
    events.add_argument("--timeout", type=float, default=None, help="exit after this many seconds")
    events.add_argument("--until-eos", action="store_true", help="exit when the cameras reach end of stream")
    events.add_argument("--status", action="store_true", help="also print status events ({\"status\": ...})")
    events.add_argument("--config", type=Path, default=None, help="TOML config file")
    events.add_argument("--runtime-dir", type=Path, default=None, help="runtime folder of the daemon")
    events.set_defaults(handler=cmd_events)
    _register_view(commands)
    _register_log(commands)
    _register_analyze(commands)
    web_cli.register(commands)
    mqtt_cli.register(commands)


def _connection_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--connect", default=None, help="results endpoint (default: the local daemon's)")
    parser.add_argument("--config", type=Path, default=None, help="TOML config file")
    parser.add_argument("--runtime-dir", type=Path, default=None, help="runtime folder of the daemon")


def _register_view(commands: argparse._SubParsersAction) -> None:
    view = commands.add_parser(
        "view", help="live window with faces, emotions and scores",
        description="Show one camera's frames with boxes, labels, score bars, a HUD and a message line. "
                    "Keys: q/Esc quit, p pause, s snapshot, f fullscreen.")
    _connection_flags(view)
    view.add_argument("--camera", default=None, help="camera to show (default: the first that sends frames)")
    view.add_argument("--snapshots", type=Path, default=Path("snapshots"),
                      help="folder for snapshots taken with s (default: ./snapshots)")
    view.add_argument("--messages", type=Path, default=None, help="messages JSON (default: config/messages.json)")
    view.add_argument("--fullscreen", action="store_true", help="start in fullscreen")
    view.add_argument("--waiting-after", type=_positive_float, default=2.0,
                      help="seconds without frames before showing 'waiting for daemon' (default: 2)")
    view.set_defaults(handler=cmd_view)


def _register_log(commands: argparse._SubParsersAction) -> None:
    logp = commands.add_parser(
        "log", help="append results to rotating JSONL/CSV files; `log summary DIR` summarises them",
        description="Append every result durably to files in --out, rotated by size and by UTC day, recording "
                    "missed seq numbers as gaps. SIGTERM flushes and closes cleanly.")
    _connection_flags(logp)
    logp.add_argument("--out", type=Path, default=None, help="folder for the log files")
    logp.add_argument("--format", choices=["jsonl", "csv"], default="jsonl", help="file format (default: jsonl)")
    logp.add_argument("--faces-only", action="store_true", help="skip results without faces (gaps still counted)")
    logp.add_argument("--rotate-mb", type=float, default=64.0, help="start a new file past this size (default: 64)")
    logp.add_argument("--fsync-seconds", type=float, default=1.0,
                      help="fsync at most this often; 0 syncs every batch (default: 1)")
    logp.add_argument("--camera", action="append", default=None, help="only this camera (repeatable)")
    logp.add_argument("--metrics-port", type=int, default=None, help="serve /metrics on this port (0: any free)")
    logp.add_argument("--metrics-host", default="127.0.0.1", help="bind address of /metrics")
    logp.set_defaults(handler=cmd_log, log_command=None)
    actions = logp.add_subparsers(dest="log_command", metavar="ACTION")
    summary = actions.add_parser("summary", help="counts per emotion per camera and a PNG timeline",
                                 description="Print faces per emotion per camera and write a PNG timeline.")
    summary.add_argument("dir", type=Path, help="folder written by `emotiond log`")
    summary.add_argument("--png", type=Path, default=None, help="timeline image (default: DIR/summary.png)")
    summary.add_argument("--bin-seconds", type=_positive_float, default=None,
                         help="timeline bin width (default: about 60 bins over the log)")
    summary.set_defaults(handler=cmd_log)


def _register_analyze(commands: argparse._SubParsersAction) -> None:
    analyze = commands.add_parser(
        "analyze", help="faces and emotions in images, folders and videos (no daemon)",
        description="Analyse images, folders of images and videos on all cores, or on a Dask cluster. Results "
                    "go to stdout as JSON lines (event schema plus source and t), and with --out into JSONL or "
                    "CSV files and annotated copies. See docs/analyze.md.")
    analyze.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="image, video or folder")
    analyze.add_argument("--out", type=Path, default=None, help="folder for annotated images/videos (and CSV)")
    analyze.add_argument("--format", choices=["json", "csv"], default="json",
                         help="json: JSON lines on stdout; csv: one CSV per video (+ images.csv) in --out")
    analyze.add_argument("--progress", action="store_true", help="progress bar even when stderr is not a tty")
    analyze.add_argument("--engine", choices=["local", "dask"], default="local",
                         help="local: one process per core here (default); dask: a Dask cluster")
    analyze.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                         help="with --engine dask: the scheduler of a running cluster (default: start a "
                              "LocalCluster on this machine)")
    analyze.add_argument("--workers", dest="engine_workers", type=int, default=None, metavar="N",
                         help="processes of the local engine or the LocalCluster (default: one per core)")
    analyze.add_argument("--chunk-seconds", type=_positive_float, default=30.0, metavar="S",
                         help="split videos into segments of at least S seconds, at key frames (default: 30)")
    analyze.add_argument("--resume", action="store_true",
                         help="skip inputs whose outputs in --out are complete from an earlier run")
    analyze.add_argument("--connect-timeout", type=_positive_float, default=10.0, metavar="S",
                         help="seconds to wait for the --scheduler to answer (default: 10)")
    analyze.add_argument("--config", type=Path, default=None, help="TOML config file (detection, model)")
    analyze.add_argument("--model", default=None, help="model bundle folder or name in the models cache")
    analyze.add_argument("--backend", choices=["litert", "tf"], default=None, help="classifier backend")
    analyze.add_argument("--detector", choices=["haar", "blazeface"], default=None,
                         help="face detector (default: haar; blazeface finds tilted and small faces)")
    analyze.add_argument("--landmarks", action="store_true",
                         help="draw each face's keypoints on the annotated outputs (detectors that give them)")
    analyze.set_defaults(handler=cmd_analyze)
