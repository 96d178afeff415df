"""Run one training job from a Config: data, model, optimiser, callbacks, stages, resume and export.

A run folder holds everything needed to resume, inspect or export it::

    config.toml          the resolved config
    run.json             labels, input, dataset counts, skipped files, stage/epoch state, final metrics
    checkpoints/best.keras, checkpoints/last.keras
    history.csv          Keras CSVLogger (one row per epoch, both stages)
    tensorboard/         TensorBoard logs
    bundle/              the exported model bundle (core.bundle format)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emotiond.training.architectures import BASE_LAYER, REGISTRY, build_model
from emotiond.training.config import Config
from emotiond.training.data import (
    Dataset,
    channels_for,
    class_weights_from_counts,
    load_dataset,
    make_pipeline,
    steps_per_epoch,
)
from emotiond.training.errors import TrainingError
from emotiond.training.runs import BEST, CONFIG_FILE, HISTORY_FILE, LAST, read_run_file, update_run_file

log = logging.getLogger(__name__)



@dataclass
class TrainResult:
    run_dir: Path
    model: Any
    labels: tuple[str, ...]
    metrics: dict[str, float]
    bundle_path: Path


def resolved_color(cfg: Config) -> str:
    return REGISTRY[cfg.model.arch].default_color if cfg.data.color == "auto" else cfg.data.color


def make_optimizer(cfg: Config, learning_rate: float, total_steps: int) -> Any:
    import keras

    lr: Any = learning_rate
    if cfg.train.schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, total_steps),
                                                    alpha=cfg.train.min_learning_rate / learning_rate)
    if cfg.train.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate=lr, weight_decay=cfg.train.weight_decay)
    return keras.optimizers.Adam(learning_rate=lr)


def compile_model(model: Any, cfg: Config, learning_rate: float, total_steps: int) -> None:
    import keras

    model.compile(
        optimizer=make_optimizer(cfg, learning_rate, total_steps),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.train.label_smoothing),
        metrics=["accuracy", keras.metrics.TopKCategoricalAccuracy(k=cfg.train.top_k, name="top_k")],
        jit_compile=cfg.train.jit_compile,
    )


class _StateWriter:
    """Records stage and completed epochs in run.json after every epoch, for --resume."""

    def __init__(self, run_dir: Path, stage: int):
        self.run_dir = run_dir
        self.stage = stage

    def __call__(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        update_run_file(self.run_dir, state={"stage": self.stage, "epochs_done": epoch + 1})


def make_callbacks(cfg: Config, run_dir: Path, stage: int, resume: bool) -> list[Any]:
    import keras

    callbacks: list[Any] = [
        keras.callbacks.ModelCheckpoint(str(run_dir / BEST), monitor=cfg.train.monitor, save_best_only=True),
        keras.callbacks.ModelCheckpoint(str(run_dir / LAST), save_best_only=False),
        keras.callbacks.CSVLogger(str(run_dir / HISTORY_FILE), append=resume or stage > 1),
        keras.callbacks.LambdaCallback(on_epoch_end=_StateWriter(run_dir, stage)),
    ]
    if cfg.train.early_stopping_patience:
        callbacks.append(keras.callbacks.EarlyStopping(monitor=cfg.train.monitor,
                                                       patience=cfg.train.early_stopping_patience,
                                                       restore_best_weights=True))
    if cfg.train.schedule == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor=cfg.train.monitor, factor=cfg.train.plateau_factor,
                                                           patience=cfg.train.plateau_patience,
                                                           min_lr=cfg.train.min_learning_rate))
    if cfg.train.tensorboard and _tensorboard_available():
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(run_dir / "tensorboard"), histogram_freq=0,
                                                     write_graph=False))
    return callbacks


def _tensorboard_available() -> bool:
    """Keras' TensorBoard callback needs the tensorboard package; without it, skip the logs rather than crash."""
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        log.warning("tensorboard is not installed; no TensorBoard logs (pip install tensorboard)")
        return False
    return True


def set_fine_tune(model: Any, layers_to_train: int) -> None:
    """Unfreeze the top N layers of the pretrained base; BatchNorm stays frozen so its statistics survive."""
    import keras

    base = model.get_layer(BASE_LAYER)
    base.trainable = True
    cutoff = max(0, len(base.layers) - layers_to_train)
    for i, layer in enumerate(base.layers):
        layer.trainable = i >= cutoff and not isinstance(layer, keras.layers.BatchNormalization)


def _pipelines(cfg: Config, data: Dataset, channels: int) -> tuple[Any, Any, int]:
    n_classes = len(data.labels)
    weights = None
    if cfg.train.class_weights:
        weights = class_weights_from_counts(data.splits["train"].counts(n_classes))
        log.info("class weights: %s", dict(zip(data.labels, np.round(weights, 3).tolist(), strict=True)))
    common = {"image_size": cfg.data.image_size, "channels": channels, "num_classes": n_classes,
              "batch_size": cfg.train.batch_size, "seed": cfg.seed, "cache": cfg.data.cache}
    train_ds = make_pipeline(data.splits["train"], training=True, shuffle_buffer=cfg.data.shuffle_buffer,
                             augment=cfg.augment, class_weights=weights, **common)
    val = data.splits.get("val")
    val_ds = make_pipeline(val, training=False, **common) if val is not None and len(val) else None
    return train_ds, val_ds, steps_per_epoch(len(data.splits["train"]), cfg.train.batch_size)


def train(cfg: Config, resume: bool = False) -> TrainResult:
    """Train per ``cfg``; with ``resume`` continue from checkpoints/last.keras in the same run folder."""
    import keras
    import tomli_w

    from emotiond.training.runtime import pick_strategy, precision, seed_everything

    if not cfg.data.path:
        raise TrainingError("no dataset: set data.path in the config or pass --data")
    run_dir = Path(cfg.output_dir).expanduser()
    state = read_run_file(run_dir).get("state", {}) if resume else {}
    if resume and not (run_dir / LAST).is_file():
        raise TrainingError(f"{run_dir}: nothing to resume (no {LAST})")
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    (run_dir / CONFIG_FILE).write_text(tomli_w.dumps(cfg.model_dump(mode="json")), encoding="utf-8")

    seed_everything(cfg.seed, cfg.train.deterministic_ops)
    data = load_dataset(cfg.data.path, cfg.data.labels, cfg.data.val_fraction, cfg.seed)
    color = resolved_color(cfg)
    channels = channels_for(color)
    spec = REGISTRY[cfg.model.arch]
    update_run_file(run_dir, name=cfg.name, arch=cfg.model.arch, labels=list(data.labels), color=color,
                    image_size=cfg.data.image_size, crop_margin_ratio=cfg.data.crop_margin_ratio,
                    in_model=spec.in_model, dataset=data.summary(), seed=cfg.seed)
    train_ds, val_ds, steps = _pipelines(cfg, data, channels)
    monitor_data = val_ds if val_ds is not None else None
    if monitor_data is None:
        raise TrainingError("no validation data: give a val split or set data.val_fraction > 0")

    started = time.time()
    with precision(cfg.train.mixed_precision), pick_strategy().scope():
        stages = _stage_plan(cfg, spec.transfer)
        done_stage, done_epochs = int(state.get("stage", 0)), int(state.get("epochs_done", 0))
        if resume:
            model = keras.models.load_model(run_dir / LAST)
            log.info("resuming %s at stage %d after epoch %d", run_dir, done_stage, done_epochs)
        else:
            model = build_model(cfg.model.arch, cfg.data.image_size, channels, len(data.labels), cfg.model)
        for stage, (first_epoch, end_epoch, lr, fine_tune) in enumerate(stages, start=1):
            if end_epoch <= first_epoch or (resume and (stage < done_stage or done_epochs >= end_epoch)):
                continue
            continuing = resume and stage == done_stage
            if not continuing:
                if spec.transfer:
                    if fine_tune:
                        set_fine_tune(model, cfg.model.transfer.fine_tune_layers)
                    else:
                        model.get_layer(BASE_LAYER).trainable = False
                compile_model(model, cfg, lr, (end_epoch - first_epoch) * steps)
            initial = max(first_epoch, done_epochs) if resume else first_epoch
            log.info("stage %d: epochs %d..%d, learning rate %g", stage, initial + 1, end_epoch, lr)
            model.fit(train_ds, validation_data=monitor_data, epochs=end_epoch, initial_epoch=initial,
                      steps_per_epoch=steps, callbacks=make_callbacks(cfg, run_dir, stage, resume),
                      verbose=cfg.train.verbose)
            resume = False
        metrics = _final_metrics(model, cfg, data, channels)
    metrics["train_seconds"] = round(time.time() - started, 1)
    model.save(run_dir / "final.keras")
    update_run_file(run_dir, metrics=metrics)
    log.info("final metrics: %s", metrics)
    from emotiond.training.export import export_run

    bundle_path = export_run(run_dir, run_dir / "bundle", model=model, with_tflite=cfg.export.with_tflite).path
    return TrainResult(run_dir=run_dir, model=model, labels=data.labels, metrics=metrics, bundle_path=bundle_path)


def _stage_plan(cfg: Config, transfer: bool) -> list[tuple[int, int, float, bool]]:
    """(first_epoch, end_epoch, learning_rate, fine_tune) per stage; epochs count across stages."""
    lr = cfg.train.learning_rate
    if not transfer:
        return [(0, cfg.train.epochs, lr, False)]
    t = cfg.model.transfer
    frozen_end = t.frozen_epochs
    stages = [(0, frozen_end, lr, False)]
    if t.fine_tune_layers:
        stages.append((frozen_end, frozen_end + cfg.train.epochs, lr * t.fine_tune_lr_factor, True))
    return stages


def _final_metrics(model: Any, cfg: Config, data: Dataset, channels: int) -> dict[str, float]:
    """Loss/accuracy on test (or val when there is no test split), for the bundle's metrics."""
    split_name = "test" if "test" in data.splits and len(data.splits["test"]) else "val"
    ds = make_pipeline(data.splits[split_name], image_size=cfg.data.image_size, channels=channels,
                       num_classes=len(data.labels), batch_size=cfg.train.batch_size, training=False, cache=False)
    values = model.evaluate(ds, verbose=0, return_dict=True)
    return {f"{split_name}_{k}": round(float(v), 5) for k, v in values.items()} | {"evaluated_on": split_name}
