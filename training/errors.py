"""Errors the training tools raise for bad data or configuration.

They carry one clear, user-facing message; the CLI turns them into exit status 2 instead of a traceback.
"""

from __future__ import annotations

from emotiond.core.errors import UsageError


class TrainingError(UsageError):
    """A user-fixable problem with a dataset, a config file or a model argument."""


class DatasetError(TrainingError):
    """A dataset that cannot be used as given: missing splits, empty classes, mismatched labels."""


class TrainingConfigError(TrainingError):
    """A training config that does not validate (unknown key, wrong type, out of range)."""
