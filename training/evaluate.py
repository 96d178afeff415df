"""``emotiond evaluate``: score a bundle on labelled data and write a self-contained report.

It evaluates the bundle exactly as the daemon will run it (the saved model with preprocessing inside, fed raw
pixels at the bundle's input size and colour), so the numbers describe what gets deployed.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from emotiond.training.data import Split, decode_split
from emotiond.training.errors import DatasetError
from emotiond.training.fercsv import is_fer_csv, read_fer_csv
from emotiond.training.scan import scan_directory

log = logging.getLogger(__name__)

SPLIT_PREFERENCE = ("test", "val", "train")


def load_eval_split(path: Path, labels: tuple[str, ...], split: str | None) -> tuple[Split, str, list[str]]:
    """The split to score, its name, and notes. Class folders must be a subset of the model's labels."""
    notes: list[str] = []
    if is_fer_csv(path):
        data = read_fer_csv(path, num_classes=len(labels))
        available = data.splits
        name = split or next((s for s in SPLIT_PREFERENCE if s in available), "")
        if name not in available:
            raise DatasetError(f"{path}: no {split or 'usable'} split (have {', '.join(available)})")
        chosen = Split(labels=available[name].labels, images=available[name].images)
        if data.bad_rows:
            notes.append(f"{len(data.bad_rows)} malformed CSV row(s) skipped")
        return chosen, name, notes
    scan = scan_directory(path, verify=True)
    name = split or next((s for s in SPLIT_PREFERENCE if s in scan.splits), "")
    if name not in scan.splits:
        raise DatasetError(f"{path}: no {name or split} split (have {', '.join(scan.splits)})")
    folders = scan.splits[name].files
    unknown = sorted(set(folders) - set(labels))
    if unknown:
        raise DatasetError(f"{path}/{name}: class folder(s) the model does not know: {', '.join(unknown)} "
                           f"(model labels: {', '.join(labels)})")
    paths: list[str] = []
    idx: list[int] = []
    for i, label in enumerate(labels):
        files = folders.get(label, [])
        if not files:
            notes.append(f"no images for class {label}")
        paths += [str(p) for p in files]
        idx += [i] * len(files)
    if scan.bad:
        notes.append(f"{len(scan.bad)} unreadable file(s) skipped: "
                     + ", ".join(str(b.path.relative_to(path)) for b in scan.bad[:10]))
    if not paths:
        raise DatasetError(f"{path}/{name}: no usable images")
    return Split(labels=np.asarray(idx, dtype=np.int32), paths=paths), name, notes


def compute_metrics(y_true: np.ndarray, probs: np.ndarray, labels: tuple[str, ...], top_k: int) -> dict[str, Any]:
    """Loss, accuracy, top-k, macro/weighted F1, the per-class report and the confusion matrix."""
    from sklearn.metrics import classification_report, confusion_matrix, f1_score

    k = len(labels)
    pred = probs.argmax(axis=1)
    eps = 1e-7
    top = np.argsort(-probs, axis=1)[:, :top_k]
    report = classification_report(y_true, pred, labels=list(range(k)), target_names=list(labels),
                                    zero_division=0, output_dict=True)
    return {
        "samples": len(y_true),
        "loss": float(-np.mean(np.log(np.clip(probs[np.arange(len(y_true)), y_true], eps, 1.0)))),
        "accuracy": float(np.mean(pred == y_true)),
        f"top_{top_k}_accuracy": float(np.mean((top == y_true[:, None]).any(axis=1))),
        "macro_f1": float(f1_score(y_true, pred, labels=list(range(k)), average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(y_true, pred, labels=list(range(k)), average="weighted", zero_division=0)),
        "per_class": {label: {m: float(report[label][m]) for m in ("precision", "recall", "f1-score", "support")}
                      for label in labels},
        "confusion_matrix": confusion_matrix(y_true, pred, labels=list(range(k))).tolist(),
    }


def evaluate_bundle(bundle_path: Path, data_path: Path, out_dir: Path, split: str | None = None, top_k: int = 2,
                    batch_size: int = 64, history_csv: Path | None = None) -> dict[str, Any]:
    """Score the bundle, draw the figures and write report.md + metrics.json into ``out_dir``."""
    import keras

    from emotiond.core import bundle as bundle_format
    from emotiond.training.export import _read_history
    from emotiond.training.plots import confusion_png, curves_png, misclassified_png
    from emotiond.training.report import write_markdown

    bundle = bundle_format.load(bundle_path)
    labels = bundle.labels
    spec = bundle.spec.input
    if spec.height != spec.width:
        log.warning("bundle input is %dx%d; images are resized to that", spec.height, spec.width)
    top_k = min(top_k, len(labels))
    data, split_name, notes = load_eval_split(data_path, labels, split)
    model = keras.models.load_model(bundle.keras_path, compile=False)
    ds = decode_split(data, spec.height, spec.channels).batch(batch_size)
    images, probs = [], []
    for batch, _ in ds:
        images.append(batch.numpy())
        probs.append(np.asarray(model.predict_on_batch(batch)))
    x = np.concatenate(images)
    p = np.concatenate(probs)
    metrics = compute_metrics(data.labels, p, labels, top_k)
    out_dir.mkdir(parents=True, exist_ok=True)
    matrix = np.asarray(metrics["confusion_matrix"])
    history = _read_history(history_csv) if history_csv else bundle.spec.provenance.get("history") or {}
    figures = {
        "confusion_matrix": confusion_png(matrix, labels, out_dir / "confusion_matrix.png", normalised=False),
        "confusion_matrix_normalised": confusion_png(matrix, labels, out_dir / "confusion_matrix_normalised.png",
                                                     normalised=True),
        "training_curves": curves_png(history, out_dir / "training_curves.png"),
        "misclassified": misclassified_png(x, data.labels, p.argmax(1), p.max(1), labels,
                                           out_dir / "misclassified.png"),
    }
    if figures["training_curves"] is None:
        notes.append("no training history in the bundle or --history; curves not drawn")
    result = {"bundle": str(bundle_path), "model": bundle.name, "data": str(data_path), "split": split_name,
              "labels": list(labels), "top_k": top_k, "notes": notes, **metrics,
              "figures": {k: (v.name if v else None) for k, v in figures.items()}}
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    write_markdown(result, out_dir / "report.md")
    return result
