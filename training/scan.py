"""Walk a directory dataset, open every image once, and report what is usable.

Images are decoded with Pillow before TensorFlow ever sees them, so a corrupt or unsupported file is listed
and skipped instead of killing a training run hours in. The same pass collects sizes, colour modes and a
pixel-content hash used to find images shared between splits.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from emotiond.training.errors import DatasetError

log = logging.getLogger(__name__)

SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
# Formats tf.io.decode_image understands; anything else would fail inside the input pipeline.
TF_FORMATS = {"PNG", "JPEG", "BMP", "GIF"}
IGNORED_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini"}


@dataclass(frozen=True)
class BadFile:
    path: Path
    reason: str


@dataclass
class SplitScan:
    """One split: the usable files of each class folder."""

    name: str
    root: Path
    files: dict[str, list[Path]] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {label: len(paths) for label, paths in sorted(self.files.items())}

    @property
    def total(self) -> int:
        return sum(len(p) for p in self.files.values())


@dataclass
class DirectoryScan:
    root: Path
    splits: dict[str, SplitScan] = field(default_factory=dict)
    bad: list[BadFile] = field(default_factory=list)
    sizes: Counter[tuple[int, int]] = field(default_factory=Counter)
    modes: Counter[str] = field(default_factory=Counter)
    hashes: dict[str, list[tuple[str, Path]]] = field(default_factory=dict)
    stray_files: list[Path] = field(default_factory=list)

    def classes(self) -> set[str]:
        return {label for split in self.splits.values() for label in split.files}

    def cross_split_duplicates(self) -> list[list[tuple[str, Path]]]:
        """Groups of identical images that appear in more than one split (a train/test leak)."""
        return [group for group in self.hashes.values() if len({split for split, _ in group}) > 1]


def split_folders(root: Path) -> dict[str, Path]:
    """Map split name to folder. A folder without train/val/test subfolders is a single 'train' split."""
    if not root.is_dir():
        raise DatasetError(f"{root}: no such dataset folder")
    found: dict[str, Path] = {}
    for child in sorted(root.iterdir()):
        key = SPLIT_NAMES.get(child.name.lower())
        if child.is_dir() and key:
            if key in found:
                raise DatasetError(f"{root}: both {found[key].name}/ and {child.name}/ look like the {key} split")
            found[key] = child
    if found:
        return found
    if any(child.is_dir() for child in root.iterdir()):
        return {"train": root}
    raise DatasetError(f"{root}: expected class folders, or train/ val/ test/ folders holding class folders")


def inspect_image(path: Path) -> tuple[tuple[int, int], str, str]:
    """Fully decode one image; return its size, mode and pixel hash. Raises ValueError when unusable."""
    from PIL import Image, UnidentifiedImageError

    if path.stat().st_size == 0:
        raise ValueError("empty file")
    try:
        with Image.open(path) as im:
            fmt = im.format or "?"
            im.load()
            if fmt not in TF_FORMATS:
                raise ValueError(f"unsupported format {fmt} (use PNG, JPEG, BMP or GIF)")
            digest = hashlib.sha256(f"{im.mode}{im.size}".encode())
            digest.update(im.tobytes())
            return im.size, im.mode, digest.hexdigest()
    except UnidentifiedImageError:
        raise ValueError("not an image Pillow can identify") from None
    except (OSError, SyntaxError) as exc:
        raise ValueError(f"cannot decode: {exc}") from None


def scan_directory(root: Path, verify: bool = True) -> DirectoryScan:
    """Scan every split and class folder under ``root``.

    With ``verify`` each file is decoded (slow for huge sets, but the only way to catch truncated files);
    without it files are taken on trust, which is what the benchmark uses to time decoding itself.
    """
    scan = DirectoryScan(root=root)
    for split_name, split_root in split_folders(root).items():
        split = SplitScan(name=split_name, root=split_root)
        for class_dir in sorted(p for p in split_root.iterdir() if p.is_dir()):
            usable: list[Path] = []
            for path in sorted(class_dir.rglob("*")):
                if not path.is_file() or path.name in IGNORED_NAMES or path.name.startswith("."):
                    continue
                if verify:
                    try:
                        size, mode, digest = inspect_image(path)
                    except ValueError as exc:
                        scan.bad.append(BadFile(path, str(exc)))
                        log.warning("skipping %s: %s", path, exc)
                        continue
                    scan.sizes[size] += 1
                    scan.modes[mode] += 1
                    scan.hashes.setdefault(digest, []).append((split_name, path))
                usable.append(path)
            split.files[class_dir.name] = usable
        scan.stray_files.extend(p for p in split_root.iterdir() if p.is_file() and p.name not in IGNORED_NAMES)
        scan.splits[split_name] = split
    return scan
