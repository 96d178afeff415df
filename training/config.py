"""The training configuration: one pydantic tree, loaded from TOML and overridden by flags.

Every section forbids unknown keys, so ``learning_rte = 0.1`` is an error naming the key instead of a run that
quietly trains with the default. Presets live in ``config/training/``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from emotiond.core.errors import format_validation_error
from emotiond.core.settings import _Section, nest_dotted, shipped_config
from emotiond.training.errors import TrainingConfigError


class DataConfig(_Section):
    path: Annotated[str, Field(description="Dataset folder (train/ val/ test/ or class folders) or FER2013 CSV.")] = ""
    labels: Annotated[str | list[str], Field(description="'fer2013' (7), 'ferplus' (8), 'auto' (sorted folder "
                                             "names) or an explicit list; the order is the model's output order.")
                      ] = "auto"
    image_size: Annotated[int, Field(ge=8, le=1024, description="Square model input side in pixels.")] = 48
    color: Annotated[Literal["auto", "gray", "rgb"], Field(description="'auto' uses the architecture's "
                                                            "default (gray for the CNNs, rgb for transfer).")] = "auto"
    val_fraction: Annotated[float, Field(ge=0.0, lt=0.9, description="Stratified share of train held out "
                                         "for validation when the dataset has no val split.")] = 0.1
    cache: Annotated[bool | str, Field(description="true caches decoded images in memory; a path caches to "
                                       "disk; false re-decodes every epoch.")] = True
    shuffle_buffer: Annotated[int, Field(ge=1)] = 20000
    crop_margin_ratio: Annotated[float, Field(ge=0.0, le=2.0, description="Margin the daemon adds around a "
                                              "detected face box; match how the training faces were framed.")] = 0.1


class AugmentConfig(_Section):
    rotation: Annotated[float, Field(ge=0.0, le=180.0, description="Max rotation in degrees.")] = 0.0
    flip: Annotated[bool, Field(description="Random horizontal flip.")] = False
    contrast: Annotated[float, Field(ge=0.0, le=1.0, description="Contrast factor range 1±x.")] = 0.0
    brightness: Annotated[float, Field(ge=0.0, le=1.0, description="Brightness shift ±x of full range.")] = 0.0
    translation: Annotated[float, Field(ge=0.0, le=0.5, description="Max shift as a fraction of size.")] = 0.0
    zoom: Annotated[float, Field(ge=0.0, le=0.5, description="Zoom range 1±x.")] = 0.0
    noise_stddev: Annotated[float, Field(ge=0.0, le=128.0, description="Gaussian noise std in pixel units "
                                         "(0..255).")] = 0.0
    color_jitter: Annotated[float, Field(ge=0.0, le=1.0, description="Saturation/hue jitter for RGB; gamma "
                                         "jitter for grey.")] = 0.0
    cutmix_alpha: Annotated[float, Field(ge=0.0, le=10.0, description="CutMix with Beta(a, a) area; 0 off.")] = 0.0
    mixup_alpha: Annotated[float, Field(ge=0.0, le=10.0, description="MixUp with Beta(a, a) weight; 0 off.")] = 0.0
    mix_probability: Annotated[float, Field(ge=0.0, le=1.0, description="Share of batches that are mixed.")] = 1.0

    def geometric(self) -> bool:
        return any((self.rotation, self.translation, self.zoom))

    def any_pixel(self) -> bool:
        return self.geometric() or self.flip or any((self.contrast, self.brightness, self.noise_stddev,
                                                     self.color_jitter))


class LeNetConfig(_Section):
    """The seeds' Configuration dict: conv stack then dense 1024/128."""

    filters: list[Annotated[int, Field(ge=1, le=2048)]] = [32, 64]
    kernel_size: Annotated[int, Field(ge=1, le=11)] = 5
    strides: Annotated[int, Field(ge=1, le=4)] = 1
    pool_size: Annotated[int, Field(ge=1, le=4)] = 2
    dense: list[Annotated[int, Field(ge=1, le=8192)]] = [1024, 128]
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.5
    l2: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0


class Cnn4Config(_Section):
    filters: list[Annotated[int, Field(ge=1, le=2048)]] = [32, 64, 128, 256]
    dense: Annotated[int, Field(ge=1, le=8192)] = 256
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.25
    dense_dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.5
    l2: Annotated[float, Field(ge=0.0, le=1.0)] = 1e-4
    batchnorm_momentum: Annotated[float, Field(gt=0.0, lt=1.0, description="Lower (0.9) suits short runs.")] = 0.99


class MiniXceptionConfig(_Section):
    base_filters: Annotated[int, Field(ge=1, le=256)] = 8
    module_filters: list[Annotated[int, Field(ge=1, le=2048)]] = [16, 32, 64, 128]
    l2: Annotated[float, Field(ge=0.0, le=1.0)] = 0.01
    batchnorm_momentum: Annotated[float, Field(gt=0.0, lt=1.0, description="Lower (0.9) suits short runs.")] = 0.99


class VitConfig(_Section):
    """vit_small: a small Vision Transformer sized for 48-96 px faces (about 0.8 M parameters by default)."""

    patches_per_side: Annotated[int, Field(ge=2, le=32, description="Patch grid side; image_size must be a "
                                           "multiple (48 px and 8 give 6 px patches, 64 tokens).")] = 8
    dim: Annotated[int, Field(ge=8, le=1024, description="Token width.")] = 128
    depth: Annotated[int, Field(ge=1, le=24, description="Encoder blocks.")] = 6
    heads: Annotated[int, Field(ge=1, le=16, description="Attention heads; dim must be a multiple.")] = 4
    mlp_ratio: Annotated[float, Field(gt=0.0, le=8.0, description="MLP hidden width as a multiple of dim.")] = 2.0
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.1
    attention_dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    head_dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.1


class TransferConfig(_Section):
    weights_path: Annotated[str, Field(description="Local ImageNet 'notop' weights file (.h5 or "
                                       ".weights.h5); empty trains from scratch (weights=None).")] = ""
    frozen_epochs: Annotated[int, Field(ge=0, le=10000, description="Stage 1: epochs with the base frozen.")] = 5
    fine_tune_layers: Annotated[int, Field(ge=0, description="Stage 2: unfreeze this many top base layers "
                                           "(BatchNorm stays frozen); 0 skips stage 2.")] = 20
    fine_tune_lr_factor: Annotated[float, Field(gt=0.0, le=1.0, description="Stage 2 LR = learning_rate x "
                                                "this.")] = 0.1
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.3
    dense: Annotated[int, Field(ge=0, le=8192, description="Hidden dense units on top; 0 for none.")] = 0
    base_input_size: Annotated[int, Field(ge=0, le=1024, description="Side the faces are resized to inside "
                                          "the graph before the pretrained base; 0 = the base's minimum input "
                                          "(75 for InceptionV3, 32 for the others) when the faces are smaller, "
                                          "else unchanged. Larger sides suit ImageNet weights better and cost "
                                          "more.")] = 0


class ModelConfig(_Section):
    arch: Annotated[str, Field(description="Registered architecture name (emotiond train --list-architectures).")
                    ] = "lenet"
    lenet: LeNetConfig = LeNetConfig()
    cnn4: Cnn4Config = Cnn4Config()
    mini_xception: MiniXceptionConfig = MiniXceptionConfig()
    vit: VitConfig = VitConfig()
    transfer: TransferConfig = TransferConfig()

    @field_validator("arch")
    @classmethod
    def _arch_known(cls, value: str) -> str:
        from emotiond.training.architectures import REGISTRY

        if value not in REGISTRY:
            raise ValueError(f"unknown architecture {value!r}; known: {', '.join(REGISTRY)}")
        return value


class TrainConfig(_Section):
    epochs: Annotated[int, Field(ge=1, le=100000, description="Total epochs (for transfer models: fine-tune "
                                 "stage epochs after the frozen stage).")] = 30
    batch_size: Annotated[int, Field(ge=1, le=8192)] = 64
    optimizer: Literal["adam", "adamw"] = "adam"
    learning_rate: Annotated[float, Field(gt=0.0, le=10.0)] = 1e-3
    weight_decay: Annotated[float, Field(ge=0.0, le=1.0, description="AdamW decoupled weight decay.")] = 1e-4
    label_smoothing: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    schedule: Literal["plateau", "cosine", "constant"] = "plateau"
    plateau_factor: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.5
    plateau_patience: Annotated[int, Field(ge=0)] = 5
    min_learning_rate: Annotated[float, Field(ge=0.0)] = 1e-6
    early_stopping_patience: Annotated[int, Field(ge=0, description="0 disables early stopping.")] = 12
    monitor: Literal["val_loss", "val_accuracy"] = "val_loss"
    class_weights: Annotated[bool, Field(description="Weight the loss by inverse class frequency.")] = True
    top_k: Annotated[int, Field(ge=1, le=20)] = 2
    mixed_precision: bool = False
    jit_compile: Annotated[bool | Literal["auto"], Field(description="XLA-compile the train step. 'auto' is "
                                                         "Keras' choice (on when every layer supports it); false "
                                                         "saves the XLA compile, minutes for InceptionV3 or "
                                                         "EfficientNetB4 on a CPU.")] = "auto"
    deterministic_ops: Annotated[bool, Field(description="tf.config.experimental.enable_op_determinism "
                                             "(bit-identical reruns, slower).")] = False
    verbose: Annotated[int, Field(ge=0, le=2, description="Keras progress: 0 silent, 1 bars, 2 one line.")] = 1
    tensorboard: bool = True


class SearchDimension(_Section):
    """One searched key: a list of ``values`` to choose from, or a ``min``..``max`` range (integers when both
    ends are integers), optionally with a ``step`` or log ``sampling``."""

    values: Annotated[list[Any] | None, Field(min_length=1, description="Choices (numbers, strings, booleans or "
                                              "lists, e.g. filter widths).")] = None
    min: int | float | None = None
    max: int | float | None = None
    step: Annotated[int | float | None, Field(gt=0)] = None
    sampling: Literal["linear", "log"] = "linear"

    @model_validator(mode="after")
    def _one_kind(self) -> SearchDimension:
        ranged = self.min is not None or self.max is not None
        if (self.values is None) == (not ranged):
            raise ValueError("give either values = [...] or min and max")
        if ranged and (self.min is None or self.max is None or self.min >= self.max):
            raise ValueError("a range needs min < max")
        if self.sampling == "log" and ranged and self.min is not None and self.min <= 0:
            raise ValueError("log sampling needs min > 0")
        return self

    @property
    def integer(self) -> bool:
        return all(isinstance(v, int) and not isinstance(v, bool) for v in (self.min, self.max, self.step)
                   if v is not None)


class TuneConfig(_Section):
    """``emotiond tune``: which keys to search and how (KerasTuner)."""

    algorithm: Annotated[Literal["hyperband", "bayesian"], Field(description="Hyperband (many short trials, the "
                                                                 "best trained longer) or Bayesian optimisation "
                                                                 "(a Gaussian process picks each next trial).")
                         ] = "hyperband"
    objective: Annotated[Literal["val_accuracy", "val_loss"], Field(description="What trials are ranked by.")
                         ] = "val_accuracy"
    max_epochs: Annotated[int, Field(ge=1, le=10000, description="Hyperband: the most epochs a trial trains; "
                                     "Bayesian: epochs per trial.")] = 20
    factor: Annotated[int, Field(ge=2, le=10, description="Hyperband reduction factor.")] = 3
    early_stopping_patience: Annotated[int, Field(ge=0, description="Stop a trial after this many epochs "
                                                  "without improvement; 0 disables.")] = 3
    space: Annotated[dict[str, SearchDimension], Field(description="Dotted config key to its search range, "
                                                       "e.g. \"train.learning_rate\" = {min = 1e-4, max = 1e-2, "
                                                       "sampling = \"log\"}.")] = {}


class ExportConfig(_Section):
    with_tflite: Annotated[bool, Field(description="Write model.tflite into the bundle for LiteRT workers.")] = True


class Config(_Section):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,128}$", description="Model/bundle name.")] = "emotion"
    seed: int = 1337
    output_dir: Annotated[str, Field(description="Run folder: checkpoints, logs, bundle.")] = "runs/emotion"
    data: DataConfig = DataConfig()
    augment: AugmentConfig = AugmentConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    export: ExportConfig = ExportConfig()
    tune: TuneConfig = TuneConfig()



def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def parse_override(text: str) -> dict[str, Any]:
    """Turn ``train.epochs=5`` into ``{"train": {"epochs": 5}}``; the value is read as TOML, else a string."""
    if "=" not in text:
        raise TrainingConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. train.epochs=5")
    key, raw = (part.strip() for part in text.split("=", 1))
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return nest_dotted({key: value})


def resolve_preset(name_or_path: str) -> Path:
    """A config argument is a TOML path, or the name of a preset in config/training/."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    presets = shipped_config("training")
    preset = presets / (name_or_path if name_or_path.endswith(".toml") else f"{name_or_path}.toml")
    if preset.is_file():
        return preset
    known = ", ".join(sorted(p.stem for p in presets.glob("*.toml")))
    raise TrainingConfigError(f"{name_or_path}: no such config file or preset (presets: {known})")


def load_config(path: str | Path | None = None, overrides: list[dict[str, Any]] | None = None) -> Config:
    """Defaults, then the TOML file, then each override in order."""
    raw: dict[str, Any] = {}
    origin = "config"
    if path:
        file = resolve_preset(str(path))
        origin = str(file)
        try:
            raw = tomllib.loads(file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise TrainingConfigError(f"{file}: invalid TOML: {exc}") from None
    for extra in overrides or []:
        raw = _merge(raw, extra)
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise TrainingConfigError("\n".join(format_validation_error(exc, origin))) from None
