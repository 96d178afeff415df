"""The layout of a training run folder: what the trainer writes and the exporter, evaluator and CLI read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RUN_FILE = "run.json"
CONFIG_FILE = "config.toml"
HISTORY_FILE = "history.csv"
BEST = "checkpoints/best.keras"
LAST = "checkpoints/last.keras"


def read_run_file(run_dir: Path) -> dict[str, Any]:
    path = run_dir / RUN_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def update_run_file(run_dir: Path, **fields: Any) -> None:
    data = read_run_file(run_dir)
    data.update(fields)
    tmp = run_dir / (RUN_FILE + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(run_dir / RUN_FILE)
