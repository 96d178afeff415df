"""The outside programs the suite drives. A missing one fails the test that needs it with the Debian package to
install (``make deps`` installs them all, from .ci/debian-packages); it is never a silent skip."""

from __future__ import annotations

import shutil

import pytest


def require_tool(command: str, package: str, purpose: str) -> str:
    """The path of ``command``, or a test failure naming the Debian package that provides it."""
    path = shutil.which(command)
    if path is None:
        pytest.fail(f"{command} is not installed; it is needed for {purpose}. Install the Debian package "
                    f"{package} (`make deps` installs every tool the tests drive).", pytrace=False)
    return path
