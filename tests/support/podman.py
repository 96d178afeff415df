"""podman for the deployment tests: this machine's settings (config/deploy/containers.conf), unique container and
project names, and CURVE keys readable by the image's user, so parallel runs never share a container or a key."""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

from support.daemon import REPO, child_env, run_cli

IMAGE = "localhost/emotiond:latest"
IMAGE_UID = 10001  # the image's user (Containerfile)
CONTAINERS_CONF = REPO / "config" / "deploy" / "containers.conf"


def podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(CONTAINERS_CONF))}


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, env=podman_env())
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args[:3])} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done


def require_image(image: str = IMAGE) -> None:
    assert podman("image", "exists", image, check=False).returncode == 0, \
        f"no image {image}: `make test-deploy` builds it first (make image)"


def unique_name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def container_keys(directory: Path, clients: list[str]) -> Path:
    """``emotiond keys generate`` for these clients, owned by the image's user (secret files stay 0600)."""
    done = run_cli("keys", "generate", "--dir", str(directory), *(f"--client={c}" for c in clients),
                   env=child_env(directory.parent / "keys-run"))
    assert done.returncode == 0, done.stderr
    for path in [directory, *directory.rglob("*")]:
        os.chown(path, IMAGE_UID, IMAGE_UID)
    return directory
