"""What needs an optional extra. Serving runs each bundle's model.tflite with LiteRT, so TensorFlow is not a
dependency: converting the fer weights, exporting TFLite and the ``tf`` backend refuse, in one line, on an install
without it, and say what to install (or what to do instead)."""

from __future__ import annotations

import importlib.util

from emotiond.core.errors import UsageError

TENSORFLOW_EXTRA = "convert"


def has_tensorflow() -> bool:
    return importlib.util.find_spec("tensorflow") is not None


def require_tensorflow(purpose: str, instead: str = "") -> None:
    """Raise a one-line UsageError unless TensorFlow is installed; ``instead`` names another way."""
    if not has_tensorflow():
        hint = f"; {instead}" if instead else ""
        raise UsageError(f"{purpose} needs TensorFlow, which this install lacks: "
                         f"pip install 'emotiond[{TENSORFLOW_EXTRA}]'{hint}")
