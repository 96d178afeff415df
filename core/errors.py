"""The one user-error type, which every command reports the same way: one clear line and exit status 2.

Each area names its own subclass (ConfigError, BundleError, TrainingError, ...); the CLI frame catches only
``UsageError``, so anything else is a bug and shows its traceback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class UsageError(Exception):
    """A user mistake (bad flag, missing source, bad config): one clear line, exit status 2."""


def format_validation_error(error: ValidationError, origin: str = "") -> list[str]:
    """One line per problem, ``origin: key.path: message``, as every config and bundle error reads."""
    lines = []
    for item in error.errors():
        path = ".".join(str(p) for p in item["loc"]) or "<root>"
        message = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
        lines.append(f"{origin}: {path}: {message}" if origin else f"{path}: {message}")
    return lines
