"""``emotiond datasets check``: a dataset health report before any training time is spent.

It answers the questions that silently ruin a run: are classes balanced or empty, do train and test share
images (inflated scores), which files will not decode, and are the images the size and colour expected.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from typing import Any

from emotiond.training.fercsv import is_fer_csv, read_fer_csv
from emotiond.training.labels import NAMED_LABEL_SETS
from emotiond.training.scan import scan_directory

SPLIT_ORDER = ("train", "val", "test")


def check_dataset(path: Path) -> dict[str, Any]:
    """Return a JSON-able report for a directory dataset or a FER2013 CSV."""
    return _check_csv(path) if is_fer_csv(path) else _check_directory(path)


def _check_directory(root: Path) -> dict[str, Any]:
    scan = scan_directory(root, verify=True)
    classes = sorted(scan.classes())
    counts = {name: {c: len(split.files.get(c, [])) for c in classes} for name, split in scan.splits.items()}
    problems: list[str] = []
    for name, per_class in counts.items():
        problems += [f"{name}/{c}: no usable images" for c, n in per_class.items() if n == 0]
        absent = [c for c in classes if c not in scan.splits[name].files]
        problems += [f"{name}/: class folder {c}/ is missing" for c in absent]
    duplicates = [[f"{split}:{path.relative_to(root)}" for split, path in group]
                  for group in scan.cross_split_duplicates()]
    if duplicates:
        problems.append(f"{len(duplicates)} image(s) appear in more than one split")
    if scan.bad:
        problems.append(f"{len(scan.bad)} unreadable file(s) will be skipped")
    problems += [f"stray file outside class folders: {p.relative_to(root)}" for p in scan.stray_files]
    return {
        "path": str(root), "format": "directory", "classes": classes, "counts": counts,
        "totals": {name: sum(c.values()) for name, c in counts.items()},
        "duplicates_across_splits": duplicates,
        "bad_files": [{"path": str(b.path.relative_to(root)), "reason": b.reason} for b in scan.bad],
        "sizes": {f"{w}x{h}": n for (w, h), n in scan.sizes.most_common()},
        "modes": dict(scan.modes.most_common()),
        "problems": problems,
    }


def _check_csv(path: Path) -> dict[str, Any]:
    data = read_fer_csv(path, num_classes=len(NAMED_LABEL_SETS["ferplus"]))
    labels = NAMED_LABEL_SETS["ferplus"] if any(
        (s.labels == 7).any() for s in data.splits.values()) else NAMED_LABEL_SETS["fer2013"]
    counts = {name: {labels[i]: int((split.labels == i).sum()) for i in range(len(labels))}
              for name, split in data.splits.items()}
    seen: dict[str, set[str]] = {}
    for name, split in data.splits.items():
        for img in split.images:
            seen.setdefault(hashlib.sha256(img.tobytes()).hexdigest(), set()).add(name)
    dup = Counter(tuple(sorted(s)) for s in seen.values() if len(s) > 1)
    problems = [f"{name}/{c}: no images" for name, per in counts.items() for c, n in per.items() if n == 0]
    if dup:
        problems.append(f"{sum(dup.values())} image(s) appear in more than one split")
    if data.bad_rows:
        problems.append(f"{len(data.bad_rows)} malformed row(s) will be skipped")
    return {
        "path": str(path), "format": "fer2013-csv", "classes": list(labels), "counts": counts,
        "totals": {name: sum(c.values()) for name, c in counts.items()},
        "duplicates_across_splits": [{"splits": list(k), "images": v} for k, v in dup.items()],
        "bad_files": [{"path": f"line {n}", "reason": r} for n, r in data.bad_rows],
        "sizes": {f"{data.side}x{data.side}": sum(len(s.labels) for s in data.splits.values())},
        "modes": {"L": sum(len(s.labels) for s in data.splits.values())},
        "problems": problems,
    }


def format_report(report: dict[str, Any], max_listed: int = 20) -> str:
    """Render the report as aligned plain text for the terminal."""
    splits = [s for s in SPLIT_ORDER if s in report["counts"]]
    width = max([len("class"), *(len(c) for c in report["classes"])])
    lines = [f"dataset {report['path']} ({report['format']}), {len(report['classes'])} classes", ""]
    lines.append(f"{'class':<{width}}  " + "  ".join(f"{s:>7}" for s in splits))
    for c in report["classes"]:
        lines.append(f"{c:<{width}}  " + "  ".join(f"{report['counts'][s].get(c, 0):>7}" for s in splits))
    lines.append(f"{'total':<{width}}  " + "  ".join(f"{report['totals'][s]:>7}" for s in splits))
    lines += ["", "image sizes (WxH): " + ", ".join(f"{k} x{v}" for k, v in list(report["sizes"].items())[:8])]
    lines.append("colour modes: " + ", ".join(f"{k} x{v}" for k, v in report["modes"].items()))
    if report["bad_files"]:
        lines += ["", f"unreadable files ({len(report['bad_files'])}, skipped):"]
        lines += [f"  {b['path']}: {b['reason']}" for b in report["bad_files"][:max_listed]]
    if report["duplicates_across_splits"]:
        lines += ["", f"duplicates across splits ({len(report['duplicates_across_splits'])} groups):"]
        for group in report["duplicates_across_splits"][:max_listed]:
            lines.append("  " + (" = ".join(group) if isinstance(group, list) else str(group)))
    lines += ["", "problems: " + ("none" if not report["problems"] else "")]
    lines += [f"  - {p}" for p in report["problems"]]
    return "\n".join(lines)
