"""``emotiond analyze``: the command's flags and the checks made before anything starts.

Only argparse at import time: the command line imports this module to build its parser; handlers import their
modules lazily, so ``emotiond --help`` stays instant.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from emotiond.core.errors import UsageError
from emotiond.daemon.flags import CONFIG, PIPELINE, add_command, positive_float, settings_from_args


def cmd_analyze(args: argparse.Namespace) -> int:
    from emotiond.clients.analyze.engines.choose import make_engine
    from emotiond.clients.analyze.runner import Analysis, AnalyzeOptions, expand_inputs
    from emotiond.clients.analyze.unit import settings_payload
    from emotiond.core import bundle as bundles

    if args.format == "csv" and args.out is None:
        raise UsageError("--format csv writes one CSV per video into --out DIR; give --out")
    if args.resume and args.out is None:
        raise UsageError("--resume looks for complete outputs in --out DIR; give --out")
    if args.scheduler is not None and args.engine != "dask":
        raise UsageError("--scheduler needs --engine dask")
    settings = settings_from_args(args)
    if args.out is not None:
        from emotiond.core.listen import writable_folder

        writable_folder("annotated files and results", args.out, "--out")
    model = bundles.resolve(settings.classifier.model, settings.models.dir)
    if not model.exists():
        raise UsageError(f"model {settings.classifier.model!r} not found; run `emotiond models fetch` for the "
                         "default model")
    inputs = list(expand_inputs(args.paths))
    if not inputs:
        raise UsageError("no images or videos found in the given paths")
    payload = settings_payload(settings)
    fmt = "csv" if args.format == "csv" else "json"  # jsonl and json are one format
    options = AnalyzeOptions(out=args.out, fmt=fmt, progress=args.progress, resume=args.resume,
                             chunk_seconds=args.chunk_seconds, landmarks=args.landmarks)
    analysis = Analysis(settings, options, lambda: make_engine(
        args.engine, payload, args.workers, args.scheduler, args.connect_timeout, settings.logging.level))
    return analysis.run(inputs)


def register(commands: argparse._SubParsersAction) -> None:
    analyze = add_command(
        commands, "analyze", cmd_analyze, (CONFIG, PIPELINE),
        help="faces and emotions in images, folders and videos (no daemon)",
        description="Analyse images, folders of images and videos on all cores, or on a Dask cluster. Results "
                    "go to stdout as JSON lines (event schema plus source and t), and with --out into JSONL or "
                    "CSV files and annotated copies. See docs/analyze.md.")
    analyze.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="image, video or folder")
    analyze.add_argument("--out", type=Path, default=None,
                         help="folder for annotated images/videos and result files, named after each input's "
                              "stem; inputs sharing a stem are numbered in input order (photo.jpg and photo.mp4 "
                              "give photo.annotated.png and photo-1.annotated.mp4), so --resume finds them again")
    analyze.add_argument("--format", choices=["jsonl", "json", "csv"], default="jsonl",
                         help="jsonl (default; json is the same): JSON lines on stdout and, with --out, "
                              "<video>.jsonl and images.jsonl, as `emotiond log --format jsonl` writes; csv: one "
                              "CSV per video (+ images.csv) in --out")
    analyze.add_argument("--progress", action="store_true", help="progress bar even when stderr is not a tty")
    analyze.add_argument("--engine", choices=["local", "dask"], default="local",
                         help="local: one process per core here (default); dask: a Dask cluster")
    analyze.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                         help="with --engine dask: the scheduler of a running cluster (default: start a "
                              "LocalCluster on this machine)")
    analyze.add_argument("--workers", type=int, default=None, metavar="N",
                         help="processes of the local engine or the LocalCluster (default: one per core)")
    analyze.add_argument("--chunk-seconds", type=positive_float, default=30.0, metavar="S",
                         help="split videos into segments of at least S seconds, at key frames (default: 30)")
    analyze.add_argument("--resume", action="store_true",
                         help="skip inputs whose outputs in --out are complete from an earlier run")
    analyze.add_argument("--connect-timeout", type=positive_float, default=10.0, metavar="S",
                         help="seconds to wait for the --scheduler to answer (default: 10)")
    analyze.add_argument("--landmarks", action="store_true",
                         help="draw each face's keypoints on the annotated outputs (detectors that give them)")
