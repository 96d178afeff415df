"""The model bundle format: the one contract between training, export and serving.

A bundle is a folder::

    model.keras     the Keras model; preprocessing (rescaling) is inside the graph
    model.tflite    optional, exported from model.keras for the LiteRT backend
    bundle.json     BundleSpec below: name, labels, input, crop rules, provenance, sha256 of each file

The model takes raw pixel values (0..255, float32) of a face crop of ``input.height x input.width x
input.channels`` and returns one probability per label. Everything before that (which crop, which colour)
is described by ``preprocessing`` and applied by workers.preprocess.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import time
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from emotiond.core.errors import UsageError, format_validation_error

log = logging.getLogger(__name__)

BUNDLE_FORMAT = "emotiond-bundle"
BUNDLE_FORMAT_VERSION = 1
SPEC_FILE = "bundle.json"
KERAS_FILE = "model.keras"
TFLITE_FILE = "model.tflite"

FER2013_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER_PLUS_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral", "contempt")


RAW_PIXEL_RANGE = (0.0, 255.0)


class BundleError(UsageError):
    """A bundle that is missing, malformed or inconsistent; the message says which and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputSpec(_Strict):
    height: Annotated[int, Field(ge=8, le=1024)]
    width: Annotated[int, Field(ge=8, le=1024)]
    channels: Literal[1, 3]
    value_range: Annotated[tuple[float, float], Field(description="The pixel values the model takes. Crops are "
                                                      "always raw 0..255; any scaling is a layer in the graph.")
                           ] = RAW_PIXEL_RANGE

    @field_validator("value_range")
    @classmethod
    def _raw_pixels(cls, value: tuple[float, float]) -> tuple[float, float]:
        if tuple(value) != RAW_PIXEL_RANGE:
            raise ValueError(f"the pipeline feeds raw pixels {RAW_PIXEL_RANGE}; put the model's own input scaling "
                             "inside its graph (a Rescaling layer) and declare value_range [0, 255]")
        return value


class CropSpec(_Strict):
    square: bool = True
    margin_px: Annotated[int, Field(ge=0, le=512)] = 0
    margin_ratio: Annotated[float, Field(ge=0.0, le=2.0)] = 0.0


class PreprocessingSpec(_Strict):
    color: Literal["gray", "rgb", "bgr"] = "gray"
    crop: CropSpec = CropSpec()
    in_model: Annotated[str, Field(description="What the model graph itself does to its input.")] = ""


class FileEntry(_Strict):
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    bytes: Annotated[int, Field(ge=0)]


class BundleSpec(_Strict):
    format: Literal["emotiond-bundle"] = BUNDLE_FORMAT
    format_version: Literal[1] = BUNDLE_FORMAT_VERSION
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,128}$")]
    labels: Annotated[tuple[str, ...], Field(min_length=2, max_length=64)]
    input: InputSpec
    preprocessing: PreprocessingSpec = PreprocessingSpec()
    provenance: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    created_at: float = Field(default_factory=time.time)
    files: dict[str, FileEntry] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _labels_are_distinct(self) -> BundleSpec:
        if len(set(self.labels)) != len(self.labels):
            raise ValueError("labels must be distinct")
        if KERAS_FILE not in self.files:
            raise ValueError(f"files must list {KERAS_FILE}")
        return self


class Bundle:
    """A loaded and checked bundle folder."""

    def __init__(self, path: Path, spec: BundleSpec):
        self.path = path
        self.spec = spec

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def labels(self) -> tuple[str, ...]:
        return self.spec.labels

    @property
    def keras_path(self) -> Path:
        return self.path / KERAS_FILE

    @property
    def tflite_path(self) -> Path | None:
        return self.path / TFLITE_FILE if TFLITE_FILE in self.spec.files else None

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "labels": list(self.labels),
                "input": self.spec.input.model_dump(), "preprocessing": self.spec.preprocessing.model_dump(),
                "files": {k: v.model_dump() for k, v in self.spec.files.items()},
                "provenance": self.spec.provenance, "metrics": self.spec.metrics}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def resolve(model: str, models_dir: Path) -> Path:
    """A bundle argument is a folder path, or a name inside the models cache."""
    candidate = Path(model).expanduser()
    if candidate.is_dir() or "/" in model or model.startswith("."):
        return candidate
    return models_dir / model


def load(path: Path, verify: bool = True) -> Bundle:
    """Read and validate bundle.json and check every listed file against its sha256."""
    spec_path = path / SPEC_FILE
    if not path.is_dir():
        raise BundleError(f"{path}: no such model bundle folder")
    if not spec_path.is_file():
        raise BundleError(f"{path}: not a model bundle (no {SPEC_FILE})")
    try:
        raw = json.loads(spec_path.read_text(encoding="utf-8"))
        spec = BundleSpec.model_validate(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{spec_path}: not valid JSON: {exc}") from None
    except ValidationError as exc:
        raise BundleError("\n".join(format_validation_error(exc, str(spec_path)))) from None
    if verify:
        for name, entry in spec.files.items():
            file_path = path / name
            if not file_path.is_file():
                raise BundleError(f"{path}: {name} is listed in {SPEC_FILE} but missing")
            actual = sha256_file(file_path)
            if actual != entry.sha256:
                raise BundleError(f"{file_path}: sha256 {actual[:12]}… does not match {SPEC_FILE} "
                                  f"({entry.sha256[:12]}…); the file is corrupt or was replaced")
    return Bundle(path, spec)


def file_entry(path: Path) -> FileEntry:
    return FileEntry(sha256=sha256_file(path), bytes=path.stat().st_size)


def write_spec(path: Path, spec: BundleSpec) -> None:
    tmp = path / (SPEC_FILE + ".tmp")
    tmp.write_text(json.dumps(spec.model_dump(mode="json"), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path / SPEC_FILE)


def check_model_shapes(input_shape: tuple[Any, ...], output_shape: tuple[Any, ...], spec: BundleSpec) -> None:
    """Raise BundleError unless the model's input/output shapes agree with the spec."""
    want_in = (spec.input.height, spec.input.width, spec.input.channels)
    if tuple(input_shape[1:]) != want_in:
        raise BundleError(f"model input {tuple(input_shape[1:])} does not match bundle input {want_in} "
                          "(height, width, channels)")
    if len(output_shape) != 2 or output_shape[-1] != len(spec.labels):
        raise BundleError(f"model output {tuple(output_shape)} does not match {len(spec.labels)} labels")


def save(model: Any, path: Path, *, name: str, labels: tuple[str, ...] | list[str], preprocessing: PreprocessingSpec,
         provenance: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None,
         with_tflite: bool = True) -> Bundle:
    """Write a Keras model (input: raw 0..255 pixels) as a bundle; optionally export TFLite beside it."""
    input_spec = InputSpec(height=int(model.input_shape[1]), width=int(model.input_shape[2]),
                           channels=int(model.input_shape[3]))
    draft = BundleSpec.model_construct(labels=tuple(labels), input=input_spec)
    check_model_shapes(tuple(model.input_shape), tuple(model.output_shape), draft)
    path.mkdir(parents=True, exist_ok=True)
    (path / TFLITE_FILE).unlink(missing_ok=True)
    model.save(path / KERAS_FILE)
    files = {KERAS_FILE: file_entry(path / KERAS_FILE)}
    if with_tflite:
        export_tflite(model, path / TFLITE_FILE)
        files[TFLITE_FILE] = file_entry(path / TFLITE_FILE)
    spec = BundleSpec(name=name, labels=tuple(labels), input=input_spec, preprocessing=preprocessing,
                      provenance=provenance or {}, metrics=metrics or {}, files=files)
    write_spec(path, spec)
    return load(path)


def export_tflite(model: Any, out: Path, calibration: Any = None) -> Path:
    """The one TFLite conversion: float by default; with calibration images (N x H x W x C raw pixels), full
    integer (int8 weights and activations measured on real images, float input and output so callers still
    feed raw pixels)."""
    import numpy as np
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if calibration is not None:
        if len(calibration) == 0:
            raise BundleError("int8 export needs calibration images")
        sample = np.asarray(calibration, np.float32)

        def representative() -> Any:
            for image in sample:
                yield [image[None, ...]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    out.parent.mkdir(parents=True, exist_ok=True)
    # Keras prints its SavedModel summary ("Saved artifact at ... Captures: ...") on stdout while converting;
    # stdout belongs to the commands' own output, so the summary goes to the debug log.
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        flat = converter.convert()
    if printed.getvalue().strip():
        log.debug("TFLite conversion of %s said: %s", out.name, printed.getvalue().strip())
    out.write_bytes(flat)
    return out


def add_tflite(bundle: Bundle) -> Bundle:
    """Export model.tflite for a bundle that lacks one (needs TensorFlow)."""
    import keras

    model = keras.models.load_model(bundle.keras_path, compile=False)
    export_tflite(model, bundle.path / TFLITE_FILE)
    files = dict(bundle.spec.files)
    files[TFLITE_FILE] = file_entry(bundle.path / TFLITE_FILE)
    write_spec(bundle.path, bundle.spec.model_copy(update={"files": files}))
    return load(bundle.path)
