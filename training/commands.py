"""``emotiond`` subcommands provided by the training package."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction) -> None:
    """Add this package's subcommands to the emotiond parser."""
