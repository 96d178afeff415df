"""``emotiond`` subcommands provided by the training package: datasets, train, tune, evaluate, export.

Handlers import TensorFlow and matplotlib only when they run, so ``emotiond --help`` stays instant. Data and
config mistakes (TrainingError) become one-line usage errors with exit status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from emotiond.core.settings import nest_dotted

log = logging.getLogger(__name__)



def register(commands: argparse._SubParsersAction) -> None:
    """Add this package's subcommands to the emotiond parser."""
    _register_datasets(commands)
    _register_train(commands)
    _register_tune(commands)
    _register_evaluate(commands)
    _register_export(commands)


def _register_datasets(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("datasets", help="check or generate training datasets",
                                 description="Check a dataset's health, or write the synthetic or digits sets.")
    sub = parser.add_subparsers(dest="datasets_command", required=True, metavar="ACTION")
    check = sub.add_parser("check", help="counts, duplicates across splits, unreadable files, sizes")
    check.add_argument("path", type=Path, help="dataset folder (train/ val/ test/ or class folders) or FER2013 CSV")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.add_argument("--strict", action="store_true", help="exit 1 when any problem is found")
    check.set_defaults(handler=cmd_datasets_check)
    synth = sub.add_parser("synth", help="write a synthetic facial-expression dataset")
    synth.add_argument("out", type=Path)
    synth.add_argument("--train", type=int, default=300, help="images per class in train/ (default 300)")
    synth.add_argument("--val", type=int, default=0, help="images per class in val/ (default 0: auto split)")
    synth.add_argument("--test", type=int, default=60, help="images per class in test/ (default 60)")
    synth.add_argument("--size", type=int, default=48, help="image side in pixels (default 48)")
    synth.add_argument("--labels", choices=["fer2013", "ferplus"], default="fer2013")
    synth.add_argument("--rgb", action="store_true", help="write 3-channel PNGs")
    synth.add_argument("--seed", type=int, default=0)
    synth.set_defaults(handler=cmd_datasets_synth)
    digits = sub.add_parser("digits", help="write scikit-learn's digits as train/ and test/ class folders")
    digits.add_argument("out", type=Path)
    digits.add_argument("--size", type=int, default=32)
    digits.add_argument("--seed", type=int, default=0)
    digits.set_defaults(handler=cmd_datasets_digits)


def _register_train(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("train", help="train an emotion model and export it as a bundle",
                            description="Train from a TOML config (a path or a preset name in config/training/), "
                                        "with flags and --set KEY=VALUE overriding it.")
    p.add_argument("--config", "-c", default=None, help="TOML file or preset name (e.g. fer2013-mini-xception)")
    p.add_argument("--data", help="dataset folder or FER2013 CSV (data.path)")
    p.add_argument("--arch", help="architecture name (model.arch)")
    p.add_argument("--labels", help="fer2013, ferplus, auto, or comma-separated class names (data.labels)")
    p.add_argument("--epochs", type=int, help="train.epochs")
    p.add_argument("--batch-size", type=int, help="train.batch_size")
    p.add_argument("--learning-rate", type=float, help="train.learning_rate")
    p.add_argument("--image-size", type=int, help="data.image_size")
    p.add_argument("--out", help="run folder (output_dir)")
    p.add_argument("--name", help="model/bundle name")
    p.add_argument("--seed", type=int)
    p.add_argument("--weights-path", help="local ImageNet weights file for transfer models")
    p.add_argument("--mixed-precision", action="store_true", default=None, help="mixed_float16 policy")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set augment.cutmix_alpha=1.0 (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from checkpoints/last.keras")
    p.add_argument("--list-architectures", action="store_true", help="print the registered architectures and exit")
    p.set_defaults(handler=cmd_train)


def _register_tune(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("tune", help="search hyperparameters with KerasTuner; write the best config as a preset",
                            description="Search the [tune.space] of a training config (learning rate, batch size, "
                                        "optimizer, dropout, width, augmentation, ...) with Hyperband or Bayesian "
                                        "optimisation; write results.csv, results.md and best.toml, a preset "
                                        "'emotiond train --config' accepts.")
    p.add_argument("--config", "-c", required=True, help="TOML file or preset name with a [tune.space] table")
    p.add_argument("--data", help="dataset folder or FER2013 CSV (data.path)")
    p.add_argument("--trials", type=int, default=10, help="most trials to run (default 10)")
    p.add_argument("--out", type=Path, default=Path("runs/tune"), help="results folder (default runs/tune)")
    p.add_argument("--algorithm", choices=["hyperband", "bayesian"], help="tune.algorithm")
    p.add_argument("--max-epochs", type=int, help="tune.max_epochs")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set tune.objective=val_loss (repeatable)")
    p.set_defaults(handler=cmd_tune)


def _register_evaluate(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("evaluate", help="score a bundle and write a report with plots")
    p.add_argument("bundle", type=Path, help="model bundle folder")
    p.add_argument("--data", type=Path, required=True, help="dataset folder or FER2013 CSV")
    p.add_argument("--split", choices=["train", "val", "test"], help="split to score (default: test, else val)")
    p.add_argument("--out", type=Path, help="report folder (default: BUNDLE/../evaluation)")
    p.add_argument("--top-k", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--history", type=Path, help="CSV training log to plot (default: the bundle's own history)")
    p.set_defaults(handler=cmd_evaluate)


def _register_export(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("export", help="export a training run as a bundle, TFLite (float/int8) or SavedModel")
    p.add_argument("source", type=Path, help="training run folder (with run.json) or an existing bundle")
    p.add_argument("--out", type=Path, help="bundle folder to write (from a run folder)")
    p.add_argument("--checkpoint", choices=["final", "best"], default="final",
                   help="which model of a run to export (default: final, which has the best weights restored)")
    p.add_argument("--no-tflite", action="store_true", help="do not put model.tflite in the bundle")
    p.add_argument("--tflite-float", type=Path, metavar="FILE", help="also write a float32 .tflite")
    p.add_argument("--tflite-int8", type=Path, metavar="FILE", help="also write an int8 .tflite")
    p.add_argument("--calibration-data", type=Path, help="dataset for int8 calibration (default: the run's data)")
    p.add_argument("--saved-model", type=Path, metavar="DIR", help="also write a TF SavedModel for TF Serving")
    p.set_defaults(handler=cmd_export)


def cmd_datasets_check(args: argparse.Namespace) -> int:
    from emotiond.training.check import check_dataset, format_report

    report = check_dataset(args.path)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 1 if args.strict and report["problems"] else 0


def cmd_datasets_synth(args: argparse.Namespace) -> int:
    from emotiond.training.labels import NAMED_LABEL_SETS
    from emotiond.training.synth import generate

    counts = {split: n for split, n in (("train", args.train), ("val", args.val), ("test", args.test)) if n > 0}
    totals = generate(args.out, counts, size=args.size, labels=NAMED_LABEL_SETS[args.labels], seed=args.seed,
                      rgb=args.rgb)
    print(f"wrote {args.out}: " + ", ".join(f"{k} {v}" for k, v in totals.items()))
    return 0


def cmd_datasets_digits(args: argparse.Namespace) -> int:
    from emotiond.training.digits import write_digits

    totals = write_digits(args.out, size=args.size, seed=args.seed)
    print(f"wrote {args.out}: " + ", ".join(f"{k} {v}" for k, v in totals.items()))
    return 0


def _flag_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The explicit flags as a nested override; flags win over --set and the config file."""
    flat: dict[str, Any] = {
        "data.path": args.data, "model.arch": args.arch, "train.epochs": args.epochs,
        "train.batch_size": args.batch_size, "train.learning_rate": args.learning_rate,
        "data.image_size": args.image_size, "output_dir": args.out, "name": args.name, "seed": args.seed,
        "model.transfer.weights_path": args.weights_path, "train.mixed_precision": args.mixed_precision,
    }
    if args.labels:
        flat["data.labels"] = args.labels if args.labels in ("fer2013", "ferplus", "fer7", "fer8", "auto") else [
            s.strip() for s in args.labels.split(",") if s.strip()]
    return nest_dotted(flat)


def cmd_train(args: argparse.Namespace) -> int:
    from emotiond.training.architectures import REGISTRY

    if args.list_architectures:
        for spec in REGISTRY.values():
            print(f"{spec.name:<20} {spec.default_color:<5} {spec.description}")
        return 0
    from emotiond.training.config import load_config, parse_override
    from emotiond.training.train import train

    overrides = [parse_override(text) for text in args.overrides] + [_flag_overrides(args)]
    cfg = load_config(args.config, overrides)
    result = train(cfg, resume=args.resume)
    print(json.dumps({"run_dir": str(result.run_dir), "bundle": str(result.bundle_path), **result.metrics}))
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from emotiond.training.config import load_config, parse_override
    from emotiond.training.tune import tune

    flags = nest_dotted({"data.path": args.data, "tune.algorithm": args.algorithm,
                         "tune.max_epochs": args.max_epochs})
    cfg = load_config(args.config, [parse_override(text) for text in args.overrides] + [flags])
    result = tune(cfg, args.out, args.trials)
    print(json.dumps({"out": str(result.out), "trials": result.trials, cfg.tune.objective: result.best_score,
                      "best": result.best_values, "preset": str(result.preset),
                      "results": str(result.out / "results.md")}))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from emotiond.training.evaluate import evaluate_bundle

    out = args.out or args.bundle.parent / "evaluation"
    result = evaluate_bundle(args.bundle, args.data, out, split=args.split, top_k=args.top_k,
                             batch_size=args.batch_size, history_csv=args.history)
    k = result["top_k"]
    print(f"{result['model']} on {result['data']} ({result['split']}, {result['samples']} images): "
          f"loss {result['loss']:.4f}  accuracy {result['accuracy']:.4f}  top-{k} {result[f'top_{k}_accuracy']:.4f}  "
          f"macro F1 {result['macro_f1']:.4f}  weighted F1 {result['weighted_f1']:.4f}")
    print(f"report: {out / 'report.md'}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    import keras

    from emotiond.core import bundle as bundle_format
    from emotiond.training.errors import TrainingError
    from emotiond.training.export import (
        calibration_images,
        export_run,
        export_saved_model,
    )
    from emotiond.training.runs import RUN_FILE, read_run_file

    source: Path = args.source
    if (source / RUN_FILE).is_file():
        out = args.out or source / "bundle"
        bundle = export_run(source, out, with_tflite=not args.no_tflite, checkpoint=args.checkpoint)
        data_path = args.calibration_data or Path(read_run_file(source).get("dataset", {}).get("source", ""))
        print(f"bundle: {bundle.path}")
    elif (source / bundle_format.SPEC_FILE).is_file():
        bundle = bundle_format.load(source)
        if args.out:
            raise TrainingError("--out applies to a training run folder; the source is already a bundle")
        data_path = args.calibration_data
    else:
        raise TrainingError(f"{source}: neither a training run folder (run.json) nor a bundle (bundle.json)")
    extras = args.tflite_float or args.tflite_int8 or args.saved_model
    if not extras:
        return 0
    model = keras.models.load_model(bundle.keras_path, compile=False)
    if args.tflite_float:
        print(f"tflite float: {bundle_format.export_tflite(model, args.tflite_float)}")
    if args.tflite_int8:
        if not data_path or not str(data_path):
            raise TrainingError("--tflite-int8 needs --calibration-data DIR (representative images)")
        spec = bundle.spec.input
        images = calibration_images(Path(data_path), bundle.labels, spec.height, spec.channels)
        print(f"tflite int8: {bundle_format.export_tflite(model, args.tflite_int8, images)} "
              f"(calibrated on {len(images)} images)")
    if args.saved_model:
        print(f"saved model: {export_saved_model(model, args.saved_model)}")
    return 0
