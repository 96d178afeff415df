"""The slim install: `pip install emotiond` with no extras has no TensorFlow, refuses what needs it in one line,
and serves the demo from a bundle packed on the full install and unpacked on the slim one.

Installs from the wheels `make image` builds (build/image/wheels), without an index, as the image does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.daemon import REPO, child_env, run_cli

pytestmark = [pytest.mark.deploy, pytest.mark.timeout(600)]

WHEELS = REPO / "build" / "image" / "wheels"
DEMO_FRAMES = 300


@pytest.fixture(scope="module")
def slim(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    assert any(WHEELS.glob("emotiond-*.whl")), f"no wheels in {WHEELS}: `make test-deploy` builds them (make image)"
    root = tmp_path_factory.mktemp("slim")
    venv = root / "venv"
    python = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    subprocess.run([str(python), "-m", "venv", str(venv)], check=True, timeout=120)
    installed = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                                "--no-index", "--find-links", str(WHEELS), "emotiond"],
                               capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr[-3000:]
    env = child_env(root / "runtime", EMOTIOND_MODELS__DIR=str(root / "models"),
                    PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}")
    for name in ("PYTHONPATH", "VIRTUAL_ENV"):
        env.pop(name, None)
    return venv, env


def slim_run(slim, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    venv, env = slim
    return subprocess.run([str(venv / "bin" / "emotiond"), *args], env=env, cwd=venv.parent, capture_output=True,
                          text=True, timeout=timeout)


def test_slim_install_has_no_tensorflow(slim):
    venv, env = slim
    listed = json.loads(subprocess.run([str(venv / "bin" / "pip"), "list", "--format", "json"], env=env,
                                       capture_output=True, text=True, check=True).stdout)
    names = {p["name"].lower() for p in listed}
    assert "emotiond" in names and "ai-edge-litert" in names  # the positive control: the list is this venv's
    assert not names & {"tensorflow", "keras", "tf-keras"}, names
    probe = subprocess.run([str(venv / "bin" / "python"), "-c", "import tensorflow"], capture_output=True,
                           text=True, env=env)
    assert probe.returncode != 0 and "No module named 'tensorflow'" in probe.stderr


@pytest.mark.parametrize(("args", "says"), [
    (("models", "fetch"), "emotiond models unpack FILE"),
    (("run", "--source", "demo", "--backend", "tf"), "--backend litert"),
    (("models", "export-tflite", "fer-mini-xception"), "emotiond models export-tflite needs TensorFlow"),
])
def test_what_needs_tensorflow_is_refused_in_one_line(slim, args, says):
    done = slim_run(slim, *args)
    assert done.returncode == 2, done.stderr
    assert "pip install 'emotiond[convert]'" in done.stderr and says in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_slim_install_serves_the_demo_from_an_unpacked_bundle(slim, default_model, tmp_path):
    archive = tmp_path / "models.tar.gz"
    packed = run_cli("models", "pack", default_model.name, "--out", str(archive), env=child_env(tmp_path / "full"))
    assert packed.returncode == 0, packed.stderr
    unpacked = slim_run(slim, "models", "unpack", str(archive))
    assert unpacked.returncode == 0, unpacked.stderr

    venv, env = slim
    daemon = subprocess.Popen([str(venv / "bin" / "emotiond"), "run", "--source", "demo", "--workers", "1",
                               "--metrics-port", "0"], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        events = slim_run(slim, "events", "--until-eos", "--timeout", "240", timeout=300)
        assert daemon.wait(60) == 0, daemon.stderr.read()[-3000:]
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(10)
    results = [json.loads(line) for line in events.stdout.splitlines() if '"seq"' in line]
    assert sorted(r["seq"] for r in results) == list(range(DEMO_FRAMES))
    assert {r["model"] for r in results} == {"fer-mini-xception"}
    assert sum(len(r["faces"]) for r in results) > DEMO_FRAMES / 2
