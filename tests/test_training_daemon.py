"""An exported bundle runs in the daemon end to end: train, export, ``emotiond run --model``, ``emotiond events``.

The LeNet-style model, and each newer architecture (InceptionV3, EfficientNetB4, the small ViT) from its
one-step training run, are served through model.tflite by a LiteRT worker."""

from __future__ import annotations

from pathlib import Path

import pytest

from emotiond.core import bundle as bundle_format

from support.training import HEAVY_PARAMS, trained_architecture, trained_lenet

pytestmark = pytest.mark.model  # runs a neural network in the test process: make check leaves it out


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp()


def test_trained_bundle_serves_in_the_daemon(base: Path, start_daemon, events, videos) -> None:
    assert_served(bundle_format.load(trained_lenet(base).bundle_path), start_daemon, events, videos)


@pytest.mark.parametrize("arch", HEAVY_PARAMS)
def test_newer_architectures_serve_in_the_daemon(arch: str, base: Path, start_daemon, events, videos) -> None:
    bundle = bundle_format.load(trained_architecture(base, arch).bundle_path)
    assert bundle.tflite_path is not None and bundle.spec.provenance["arch"] == arch
    assert_served(bundle, start_daemon, events, videos)


def assert_served(bundle: bundle_format.Bundle, start_daemon, events, videos) -> None:
    """Every frame of the one-face video comes back with the bundle's name and a full, valid score set."""
    daemon = start_daemon("--source", f"cam={videos['one_face']}", "--model", str(bundle.path), workers=1)
    reader = events(daemon, "--until-eos", "--timeout", "120")
    assert daemon.process.wait(120) == 0, daemon.log()[-2000:]
    results = reader.wait(30)
    assert sorted(r["seq"] for r in results) == list(range(60))
    assert {r["model"] for r in results} == {bundle.name}
    faces = [f for r in results for f in r["faces"]]
    assert len(faces) >= 50, "the detector should find the face in most frames"
    assert all(set(f["scores"]) == set(bundle.labels) for f in faces)
    assert all(abs(sum(f["scores"].values()) - 1.0) < 0.01 for f in faces)
    # The top emotion has the top score (an untrained model's near-uniform scores can tie once rounded).
    assert all(f["scores"][f["emotion"]] == max(f["scores"].values()) for f in faces)
