"""One gate for pixels: only the modules listed here may encode or write images (``cv2.imencode``,
``cv2.imwrite``, ``cv2.VideoWriter``, ``protocol.encode_frame``), each for the reason given, so that no new path can
send a frame out without passing the pipeline's redaction (``Pipeline.image``) or capture's privacy masks.

A module that needs to encode pixels is added here in the same change, with where its pixels come from.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

from support.daemon import REPO

ENCODERS = {"imencode", "imwrite", "VideoWriter", "encode_frame"}
IGNORED = {".venv", "tests", "node_modules", "build", "examples", "docs", "config", ".git"}

ALLOWED: dict[str, tuple[set[str], str]] = {
    "core/protocol.py": ({"imencode"}, "the frame encoder itself (JPEG frames on the bus)"),
    "capture/process.py": ({"encode_frame"}, "frames to the workers, privacy masks already filled by the reader"),
    "workers/service.py": ({"encode_frame"}, "publishes Pipeline.image(...): faces hidden per [privacy] faces"),
    "clients/mqtt/snapshots.py": ({"imencode"}, "snapshots of frames from the bus, redacted by the worker"),
    "clients/web/feeds.py": ({"imencode"}, "MJPEG and WebSocket frames from the bus, redacted by the worker"),
    "clients/view/viewer.py": ({"imwrite"}, "screenshots of frames from the bus, redacted by the worker"),
    "clients/web/analysis.py": ({"imencode"}, "the upload's annotated copy of Analyzer.result_image"),
    "clients/analyze/unit.py": ({"imwrite", "VideoWriter"}, "analyze --out, drawn on Pipeline.process_images"),
    "capture/synthetic.py": ({"VideoWriter"}, "test and demo videos of the shipped public-domain photos"),
    "benchmarks/stage_cpu.py": ({"encode_frame"}, "synthetic frames decoded in-process, never sent anywhere"),
}


def python_files() -> list[Path]:
    found = []
    for folder, subfolders, files in os.walk(REPO):
        subfolders[:] = [name for name in subfolders if name not in IGNORED]
        found += [Path(folder) / name for name in files if name.endswith(".py")]
    return sorted(found)


def encoder_uses(source: str) -> set[str]:
    """Encoders a module calls (``cv2.imencode(...)``, ``protocol.encode_frame(...)``, a bare imported name) or
    imports by name (``from cv2 import imwrite``), wherever the statement stands."""
    used: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in ENCODERS:
                used.add(name)
        elif isinstance(node, ast.ImportFrom):
            used.update(alias.name for alias in node.names if alias.name in ENCODERS)
        elif isinstance(node, ast.Attribute) and node.attr in ENCODERS and not isinstance(node.ctx, ast.Store):
            used.add(node.attr)  # passed around or aliased: ``encode = cv2.imencode``
    return used


def test_only_listed_modules_encode_or_write_pixels():
    found = {str(path.relative_to(REPO)): encoder_uses(path.read_text(encoding="utf-8")) for path in python_files()}
    found = {module: used for module, used in found.items() if used}
    unlisted = {module: sorted(used - ALLOWED.get(module, (set(), ""))[0]) for module, used in found.items()}
    unlisted = {module: used for module, used in unlisted.items() if used}
    assert unlisted == {}, ("these modules encode or write images without passing the pixel gate; take the "
                            f"pipeline's image (Pipeline.image / process_images) and list them here: {unlisted}")
    stale = sorted(module for module, (allowed, _why) in ALLOWED.items() if not allowed & found.get(module, set()))
    assert stale == [], f"listed but no longer encoding (remove them from ALLOWED): {stale}"


def test_the_gate_sees_every_way_of_calling_an_encoder():
    assert encoder_uses("import cv2\ncv2.imencode('.jpg', x)\n") == {"imencode"}
    assert encoder_uses("from cv2 import imwrite\nimwrite('a.png', x)\n") == {"imwrite"}
    assert encoder_uses("def f():\n    return protocol.encode_frame(h, p)\n") == {"encode_frame"}
    assert encoder_uses("save = cv2.imwrite\n") == {"imwrite"}
    assert encoder_uses("w = cv2.VideoWriter(p, c, 30, s)\n") == {"VideoWriter"}
    assert encoder_uses("cv2.imdecode(x, 1)\nprotocol.decode(parts)\n") == set()
