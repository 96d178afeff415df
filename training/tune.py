"""Hyperparameter search with KerasTuner over the ``[tune]`` space of a training config.

Each searched key is a dotted config key (``train.learning_rate``, ``train.batch_size``, ``train.optimizer``,
``model.cnn4.dropout``, ``model.cnn4.filters``, ``augment.rotation``, ...), so anything ``emotiond train``
accepts can be searched and every trial is an ordinary Config. The dataset is decoded once and shared by all
trials. A search writes::

    results.csv, results.md   one row per trial: its values, score and status, best first
    best.toml                 the best trial's full config: ``emotiond train --config best.toml`` trains it
    keras_tuner/              KerasTuner's own records (trials, checkpoints)

Transfer models are searched with the pretrained base frozen (stage 1); the best preset then trains both
stages as usual.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emotiond.core.settings import nest_dotted
from emotiond.training.architectures import BASE_LAYER, REGISTRY, build_model
from emotiond.training.config import Config, SearchDimension, load_config
from emotiond.training.data import (
    Dataset,
    channels_for,
    class_weights_from_counts,
    decoded,
    load_dataset,
    make_pipeline,
    steps_per_epoch,
)
from emotiond.training.errors import TrainingConfigError, TrainingError

log = logging.getLogger(__name__)

BEST_PRESET = "best.toml"
RESULTS_CSV = "results.csv"
RESULTS_MD = "results.md"
TUNER_DIR = "keras_tuner"


@dataclass
class TuneResult:
    out: Path
    best_values: dict[str, Any]
    best_score: float | None
    preset: Path
    trials: int


def _is_scalar(value: Any) -> bool:
    return isinstance(value, bool | int | float | str)


def choice_encoding(values: list[Any]) -> tuple[list[Any], bool]:
    """KerasTuner choices must be scalars of one type; anything else (lists, mixed types) is offered as JSON
    text and decoded again for the config. Returns (choices, encoded)."""
    kinds = {type(v) for v in values}
    if all(_is_scalar(v) for v in values) and (len(kinds) == 1 or kinds <= {int, float}):
        return (list(values) if kinds != {int, float} else [float(v) for v in values]), False
    return [json.dumps(v) for v in values], True


def trial_config(base: Config, values: dict[str, Any]) -> Config:
    """The base config with the searched keys set to ``values``."""
    return load_config(None, [base.model_dump(mode="json"), nest_dotted(values)])


def check_space(cfg: Config) -> None:
    """Every searched key must exist and every end of every range must be a valid value for it."""
    if not cfg.tune.space:
        raise TrainingConfigError("no search space: add a [tune.space] table to the config, e.g. "
                                  '"train.learning_rate" = {min = 1e-4, max = 1e-2, sampling = "log"}')
    problems = []
    for key, dim in cfg.tune.space.items():
        if key.startswith(("tune", "data.path", "output_dir")):
            problems.append(f"tune.space.{key}: not a searchable key")
            continue
        candidates = dim.values if dim.values is not None else [dim.min, dim.max]
        for value in candidates:
            try:
                trial_config(cfg, {key: value})
            except TrainingConfigError as exc:
                problems.append(f"tune.space.{key} = {value!r}: {str(exc).split(': ', 1)[-1]}")
    if problems:
        raise TrainingConfigError("\n".join(problems))


def _hp_value(hp: Any, key: str, dim: SearchDimension) -> Any:
    """Register one dimension with KerasTuner and return the config value for this trial."""
    if dim.values is not None:
        choices, encoded = choice_encoding(dim.values)
        picked = hp.Choice(key, choices)
        return json.loads(picked) if encoded else picked
    log_sampling = dim.sampling == "log"
    if dim.integer:
        return hp.Int(key, int(dim.min), int(dim.max), step=int(dim.step) if dim.step else None,
                      sampling="log" if log_sampling else "linear")
    return hp.Float(key, float(dim.min), float(dim.max), step=dim.step, sampling="log" if log_sampling else "linear")


def _make_hypermodel(cfg: Config, data: Dataset, channels: int) -> Any:
    import keras_tuner

    from emotiond.training.train import compile_model

    n_classes = len(data.labels)
    weights = class_weights_from_counts(data.splits["train"].counts(n_classes)) if cfg.train.class_weights else None
    transfer = REGISTRY[cfg.model.arch].transfer

    class SearchModel(keras_tuner.HyperModel):
        """A trial is the base config with this trial's values; build and fit read the same values."""

        def trial(self, hp: Any) -> Config:
            return trial_config(cfg, {key: _hp_value(hp, key, dim) for key, dim in cfg.tune.space.items()})

        def build(self, hp: Any) -> Any:
            trial = self.trial(hp)
            model = build_model(trial.model.arch, trial.data.image_size, channels, n_classes, trial.model)
            if transfer:
                model.get_layer(BASE_LAYER).trainable = False
            steps = steps_per_epoch(len(data.splits["train"]), trial.train.batch_size)
            compile_model(model, trial, trial.train.learning_rate, steps * cfg.tune.max_epochs)
            return model

        def fit(self, hp: Any, model: Any, *args: Any, **kwargs: Any) -> Any:
            trial = self.trial(hp)
            common = {"image_size": trial.data.image_size, "channels": channels, "num_classes": n_classes,
                      "batch_size": trial.train.batch_size, "seed": trial.seed}
            train_ds = make_pipeline(data.splits["train"], training=True, shuffle_buffer=trial.data.shuffle_buffer,
                                     augment=trial.augment, class_weights=weights, **common)
            val_ds = make_pipeline(data.splits["val"], training=False, **common)
            steps = steps_per_epoch(len(data.splits["train"]), trial.train.batch_size)
            return model.fit(train_ds, validation_data=val_ds, steps_per_epoch=steps, **kwargs)

    return SearchModel(name=cfg.name)


def _make_tuner(cfg: Config, hypermodel: Any, directory: Path, trials: int) -> Any:
    import keras_tuner

    objective = keras_tuner.Objective(cfg.tune.objective, "max" if cfg.tune.objective.endswith("accuracy")
                                      else "min")
    common = {"hypermodel": hypermodel, "objective": objective, "seed": cfg.seed, "directory": str(directory),
              "project_name": cfg.name, "overwrite": True, "max_consecutive_failed_trials": 1}
    if cfg.tune.algorithm == "bayesian":
        return keras_tuner.BayesianOptimization(max_trials=trials, **common)
    tuner = keras_tuner.Hyperband(max_epochs=cfg.tune.max_epochs, factor=cfg.tune.factor, **common)
    tuner.oracle.max_trials = trials  # Hyperband's brackets would run more; the budget is --trials
    return tuner


def tune(cfg: Config, out: Path, trials: int) -> TuneResult:
    """Search ``cfg.tune.space`` with at most ``trials`` trials; write the results table and the best preset."""
    import keras

    from emotiond.training.runtime import seed_everything
    from emotiond.training.train import resolved_color

    if trials < 1:
        raise TrainingConfigError("--trials must be at least 1")
    if not cfg.data.path:
        raise TrainingError("no dataset: set data.path in the config or pass --data")
    check_space(cfg)
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed, cfg.train.deterministic_ops)
    data = load_dataset(cfg.data.path, cfg.data.labels, cfg.data.val_fraction, cfg.seed)
    if "val" not in data.splits or not len(data.splits["val"]):
        raise TrainingError("no validation data to rank trials: give a val split or set data.val_fraction > 0")
    channels = channels_for(resolved_color(cfg))
    for name in ("train", "val"):
        data.splits[name] = decoded(data.splits[name], cfg.data.image_size, channels)
    tuner = _make_tuner(cfg, _make_hypermodel(cfg, data, channels), out / TUNER_DIR, trials)
    callbacks = []
    if cfg.tune.early_stopping_patience:
        callbacks.append(keras.callbacks.EarlyStopping(monitor=cfg.tune.objective,
                                                       patience=cfg.tune.early_stopping_patience))
    started = time.monotonic()
    log.info("searching %d key(s) with %s, %d trial(s) at most", len(cfg.tune.space), cfg.tune.algorithm, trials)
    tuner.search(epochs=cfg.tune.max_epochs, callbacks=callbacks, verbose=cfg.train.verbose)
    rows = results_rows(tuner, cfg)
    write_results(rows, cfg, out)
    finished = [row for row in rows if row["score"] is not None]
    if not finished:
        raise TrainingError(f"no trial finished; see {out / TUNER_DIR} and the log above")
    best = finished[0]
    values = {key: best[key] for key in cfg.tune.space}
    preset = write_best_preset(cfg, values, best, len(rows), out)
    log.info("search done in %.0f s: best %s %.4f with %s", time.monotonic() - started, cfg.tune.objective,
             best["score"], values)
    return TuneResult(out=out, best_values=values, best_score=best["score"], preset=preset, trials=len(rows))


def results_rows(tuner: Any, cfg: Config) -> list[dict[str, Any]]:
    """One row per trial, best first (unfinished trials last), with the config values it used."""
    rows = []
    for trial in tuner.oracle.trials.values():
        hp_values = trial.hyperparameters.values
        row: dict[str, Any] = {"trial": trial.trial_id, "status": str(trial.status),
                               "score": None if trial.score is None else float(trial.score),
                               "epochs": hp_values.get("tuner/epochs", cfg.tune.max_epochs)}
        for key, dim in cfg.tune.space.items():
            value = hp_values.get(key)
            if dim.values is not None and isinstance(value, str) and choice_encoding(dim.values)[1]:
                value = json.loads(value)
            row[key] = value
        rows.append(row)
    maximise = cfg.tune.objective.endswith("accuracy")
    return sorted(rows, key=lambda r: (r["score"] is None,
                                       0.0 if r["score"] is None else (-r["score"] if maximise else r["score"])))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return json.dumps(value) if isinstance(value, list) else str(value)


def write_results(rows: list[dict[str, Any]], cfg: Config, out: Path) -> None:
    columns = ["trial", "status", "score", "epochs", *cfg.tune.space]
    with (out / RESULTS_CSV).open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow([c if c != "score" else cfg.tune.objective for c in columns])
        for row in rows:
            writer.writerow(["" if row[c] is None else _cell(row[c]) for c in columns])
    header = [c if c != "score" else cfg.tune.objective for c in columns]
    lines = [f"# Hyperparameter search: {cfg.name} ({cfg.model.arch}, {cfg.tune.algorithm}, "
             f"{len(rows)} trials)", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join("" if row[c] is None else _cell(row[c]) for c in columns) + " |" for row in rows]
    (out / RESULTS_MD).write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_best_preset(cfg: Config, values: dict[str, Any], best: dict[str, Any], trials: int, out: Path) -> Path:
    """The best trial's full config, without the search section, as a preset ``emotiond train`` accepts."""
    import tomli_w

    best_cfg = trial_config(cfg, values)
    best_cfg = best_cfg.model_copy(update={"output_dir": str(out / "best-run")})
    body = best_cfg.model_dump(mode="json", exclude={"tune"})
    preset = out / BEST_PRESET
    header = (f"# Best of {trials} trials of emotiond tune ({cfg.tune.algorithm}): {cfg.tune.objective} "
              f"{best['score']:.4f} in trial {best['trial']}.\n"
              f"# Searched: {', '.join(f'{k} = {_cell(v)}' for k, v in values.items())}\n"
              f"# Train it: emotiond train --config {preset}\n")
    preset.write_text(header + tomli_w.dumps(body), encoding="utf-8")
    load_config(preset)  # what we wrote must load as a training config
    return preset
