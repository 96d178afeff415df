"""Label sets and how a dataset's class folders are matched against them.

The class order decides which output unit means which emotion, so it is fixed here once and then saved
with the model; folder listing order never leaks into it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from emotiond.core.bundle import FER2013_LABELS, FER_PLUS_LABELS
from emotiond.training.errors import DatasetError

NAMED_LABEL_SETS: dict[str, tuple[str, ...]] = {
    "fer2013": FER2013_LABELS,
    "fer7": FER2013_LABELS,
    "ferplus": FER_PLUS_LABELS,
    "fer8": FER_PLUS_LABELS,
}
AUTO = "auto"


def named_or_custom(spec: str | Sequence[str]) -> tuple[str, ...] | None:
    """Return the label tuple a config asks for, or None for ``auto`` (sorted folder names)."""
    if isinstance(spec, str):
        if spec == AUTO:
            return None
        if spec not in NAMED_LABEL_SETS:
            raise DatasetError(f"unknown label set {spec!r}; use one of {', '.join(sorted(NAMED_LABEL_SETS))}, "
                               "'auto' or a list of class names")
        return NAMED_LABEL_SETS[spec]
    labels = tuple(str(x) for x in spec)
    if len(labels) < 2:
        raise DatasetError("a label list needs at least two classes")
    if len(set(labels)) != len(labels):
        raise DatasetError(f"label list has duplicates: {list(labels)}")
    return labels


def resolve_labels(spec: str | Sequence[str], found: Iterable[str], where: str) -> tuple[str, ...]:
    """Match the class folders found in a dataset against the requested label set.

    ``auto`` takes the folders in sorted order (what ``image_dataset_from_directory`` does). A named or
    custom set must match the folders exactly, otherwise the error lists what is missing and what is extra.
    """
    found_set = set(found)
    wanted = named_or_custom(spec)
    if wanted is None:
        if len(found_set) < 2:
            raise DatasetError(f"{where}: found {len(found_set)} class folder(s); need at least two")
        return tuple(sorted(found_set))
    check_same_classes(wanted, found_set, where)
    return wanted


def check_same_classes(wanted: Sequence[str], found: Iterable[str], where: str) -> None:
    """Raise DatasetError naming the missing and unexpected classes when the two sets differ."""
    found_set = set(found)
    missing = [c for c in wanted if c not in found_set]
    extra = sorted(found_set - set(wanted))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing class folder(s): {', '.join(missing)}")
        if extra:
            parts.append(f"unexpected class folder(s): {', '.join(extra)}")
        raise DatasetError(f"{where}: label set mismatch; {'; '.join(parts)} (expected {', '.join(wanted)})")
