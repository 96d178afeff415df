"""Read the FER2013 CSV (``emotion,pixels,Usage``) into image arrays per split.

The file is the one Kaggle distributes: a class index 0..6, 2304 space-separated grey values (48x48), and a
Usage column whose ``Training``/``PublicTest``/``PrivateTest`` values become the train/val/test splits.
Malformed rows are skipped and reported by line number rather than aborting the whole read.
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emotiond.training.errors import DatasetError

log = logging.getLogger(__name__)

USAGE_TO_SPLIT = {"training": "train", "publictest": "val", "privatetest": "test"}


@dataclass
class CsvSplit:
    images: np.ndarray  # (N, side, side) uint8
    labels: np.ndarray  # (N,) int32 class indices


@dataclass
class FerCsv:
    path: Path
    side: int
    splits: dict[str, CsvSplit]
    bad_rows: list[tuple[int, str]] = field(default_factory=list)


def is_fer_csv(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() == ".csv"


def read_fer_csv(path: Path, num_classes: int) -> FerCsv:
    """Parse the CSV; every row must hold the same square image size and a class index < num_classes."""
    if not path.is_file():
        raise DatasetError(f"{path}: no such CSV file")
    per_split: dict[str, tuple[list[np.ndarray], list[int]]] = {}
    bad: list[tuple[int, str]] = []
    side: int | None = None
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = {name.strip().lower(): name for name in (reader.fieldnames or [])}
        if "emotion" not in header or "pixels" not in header:
            raise DatasetError(f"{path}: header must have 'emotion' and 'pixels' columns (found "
                               f"{', '.join(reader.fieldnames or []) or 'none'})")
        for line_no, row in enumerate(reader, start=2):
            try:
                label = int(row[header["emotion"]])
                values = np.array(row[header["pixels"]].split(), dtype=np.float32)
            except (TypeError, ValueError, AttributeError):
                bad.append((line_no, "emotion or pixels is not numeric"))
                continue
            if not 0 <= label < num_classes:
                bad.append((line_no, f"emotion {label} outside 0..{num_classes - 1}"))
                continue
            row_side = math.isqrt(values.size)
            if row_side * row_side != values.size or row_side < 8:
                bad.append((line_no, f"{values.size} pixels is not a square image"))
                continue
            if side is None:
                side = row_side
            if row_side != side:
                bad.append((line_no, f"image is {row_side}x{row_side}, expected {side}x{side} like the first row"))
                continue
            if values.min() < 0 or values.max() > 255:
                bad.append((line_no, "pixel values outside 0..255"))
                continue
            usage = (row.get(header.get("usage", ""), "") or "training").strip().lower()
            split = USAGE_TO_SPLIT.get(usage)
            if split is None:
                bad.append((line_no, f"unknown Usage {usage!r}"))
                continue
            images, labels = per_split.setdefault(split, ([], []))
            images.append(values.reshape(side, side).astype(np.uint8))
            labels.append(label)
    for line_no, reason in bad[:20]:
        log.warning("%s line %d skipped: %s", path, line_no, reason)
    if len(bad) > 20:
        log.warning("%s: %d more bad rows skipped", path, len(bad) - 20)
    if side is None:
        raise DatasetError(f"{path}: no usable rows")
    splits = {name: CsvSplit(np.stack(imgs), np.asarray(lbls, dtype=np.int32))
              for name, (imgs, lbls) in per_split.items()}
    return FerCsv(path=path, side=side, splits=splits, bad_rows=bad)
