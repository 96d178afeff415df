"""What every settings section shares: the strict base class, the per-user folders and shipped config."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict

DEFAULT_MODEL_NAME = "fer-mini-xception"
MASK_SECRETS = "mask_secrets"  # serialization context key: print secrets as ********** (config show)
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"  # an environment variable that holds a secret (password_env)


def shipped_config(*parts: str) -> Path:
    """A file under the repository's config/, shipped as package data of ``emotiond`` (a wheel installs it on
    disk, so a plain path serves both a checkout and an installed package)."""
    from importlib.resources import files

    return Path(str(files("emotiond").joinpath("config", *parts)))


def default_runtime_dir() -> Path:
    """Where ipc sockets and metric files live: per user, never shared between users."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and os.access(base, os.W_OK):
        return Path(base) / "emotiond"
    return Path("/tmp") / f"emotiond-{os.getuid()}"


def default_state_dir() -> Path:
    """Where state that outlives a restart lives (the web console's users, sessions and certificate): per user,
    ``$XDG_STATE_HOME/emotiond`` or ``~/.local/state/emotiond``."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "emotiond"


def default_models_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "emotiond" / "models"


class _Section(BaseModel):
    """The base of every settings section, here and in the training config: an unknown key is an error naming
    it (never a silent default), and assignments are validated like loaded values."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
