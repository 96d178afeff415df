"""The evaluation figures, drawn with matplotlib's Agg backend so they work on headless machines."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def confusion_png(matrix: np.ndarray, labels: Sequence[str], out: Path, normalised: bool) -> Path:
    """Rows are true classes, columns predictions; normalised rows sum to 1 (per-class recall on the diagonal)."""
    plt = _pyplot()
    values = matrix.astype(np.float64)
    if normalised:
        values = values / np.maximum(values.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.6 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(values, cmap="Blues", vmin=0, vmax=1 if normalised else max(1, values.max()))
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix (row-normalised)" if normalised else "confusion matrix (counts)")
    threshold = values.max() / 2 if values.size else 0
    for i in range(len(labels)):
        for j in range(len(labels)):
            text = f"{values[i, j]:.2f}" if normalised else str(int(values[i, j]))
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="white" if values[i, j] > threshold else "black")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def curves_png(history: dict[str, list[float]], out: Path) -> Path | None:
    """Loss and accuracy per epoch, train against validation; None when there is no history to draw."""
    metrics = [m for m in ("loss", "accuracy") if history.get(m)]
    if not metrics:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        epochs = np.arange(1, len(history[metric]) + 1)
        # Markers: a one-epoch run has one point per series, which a line alone would not draw.
        ax.plot(epochs, history[metric], marker="o", label=f"train {metric}")
        if history.get(f"val_{metric}"):
            ax.plot(epochs[: len(history[f"val_{metric}"])], history[f"val_{metric}"], marker="s",
                    label=f"val {metric}")
        if len(epochs) <= 20:
            ax.set_xticks(epochs)  # whole epochs, not 0.96 .. 1.04 around a single one
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def misclassified_png(images: np.ndarray, true: np.ndarray, pred: np.ndarray, conf: np.ndarray,
                      labels: Sequence[str], out: Path, limit: int = 36) -> Path | None:
    """A grid of the most confident mistakes, titled true → predicted (confidence)."""
    wrong = np.flatnonzero(true != pred)
    if wrong.size == 0:
        return None
    wrong = wrong[np.argsort(-conf[wrong])][:limit]
    plt = _pyplot()
    cols = min(6, wrong.size)
    rows = int(np.ceil(wrong.size / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2 * cols, 2.2 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), wrong, strict=False):
        img = images[i]
        gray = img.shape[-1] == 1
        ax.imshow(img[..., 0] if gray else img.astype(np.uint8), cmap="gray" if gray else None, vmin=0, vmax=255)
        ax.set_title(f"{labels[true[i]]} → {labels[pred[i]]}\n({conf[i]:.2f})", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
