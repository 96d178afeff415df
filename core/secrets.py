"""Reading a secret the way every setting that holds one does: the first line of a file, or an environment variable.

Errors name the setting and the file or variable, never the secret; each caller wraps them in its own error type.
"""

from __future__ import annotations

import os
from pathlib import Path


class SecretError(ValueError):
    """A configured secret that cannot be read. The message names the setting, never the value."""


def read_secret(file: Path | str | None, env_name: str | None, what: str = "", *,
                env_required: bool = False) -> str | None:
    """The secret from the first line of ``file``, else from the variable ``env_name``; None if neither is set.

    ``what`` is the section that holds the ``password_file`` and ``password_env`` settings, as messages name
    them (``"mqtt"`` gives ``mqtt.password_file``; empty gives ``password_file``). An unset or empty variable
    means no secret, unless ``env_required`` (the variable was named on purpose), when it is an error.
    """
    prefix = f"{what}." if what else ""
    if file is not None:
        path = Path(file).expanduser()
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise SecretError(f"cannot read {prefix}password_file {path}: "
                              f"{getattr(exc, 'strerror', None) or exc}") from None
        if not lines or not lines[0]:
            raise SecretError(f"{prefix}password_file {path} is empty")
        return lines[0]
    if env_name is None:
        return None
    value = os.environ.get(env_name)
    if not value and env_required:
        raise SecretError(f"environment variable {env_name} ({prefix}password_env) is unset or empty")
    return value or None
