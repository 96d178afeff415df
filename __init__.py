"""emotiond: real-time facial emotion recognition.

The repository root is the package, and its folders are the layers: ``emotiond.core``,
``emotiond.capture``, ``emotiond.workers``, ``emotiond.daemon``, ``emotiond.clients``, ``emotiond.training`` and
``emotiond.benchmarks``. The public Python API is loaded on first use, so importing a low layer
(``emotiond.core.protocol``) never pulls in OpenCV or a model.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Analyzer", "Face", "subscribe"]

_PUBLIC = {
    "Analyzer": "emotiond.clients.api",
    "Face": "emotiond.core.protocol",  # the API's faces are the protocol's own
    "subscribe": "emotiond.clients.subscribe",
}


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'emotiond' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value
