"""The evaluation report as one Markdown file that links the PNGs written beside it."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_markdown(result: dict[str, Any], out: Path) -> Path:
    k = result["top_k"]
    lines = [
        f"# Evaluation: {result['model']}",
        "",
        f"- bundle: `{result['bundle']}`",
        f"- data: `{result['data']}` (split `{result['split']}`, {result['samples']} images)",
        "",
        "## Summary",
        "",
        "| metric | value |",
        "|---|---|",
        f"| loss | {result['loss']:.4f} |",
        f"| accuracy | {result['accuracy']:.4f} |",
        f"| top-{k} accuracy | {result[f'top_{k}_accuracy']:.4f} |",
        f"| macro F1 | {result['macro_f1']:.4f} |",
        f"| weighted F1 | {result['weighted_f1']:.4f} |",
        "",
        "## Per class",
        "",
        "| class | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
    ]
    for label, row in result["per_class"].items():
        lines.append(f"| {label} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1-score']:.3f} | "
                     f"{int(row['support'])} |")
    labels = result["labels"]
    lines += ["", "## Confusion matrix (rows: true, columns: predicted)", "",
              "| | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for label, row in zip(labels, result["confusion_matrix"], strict=True):
        lines.append(f"| **{label}** | " + " | ".join(str(v) for v in row) + " |")
    titles = {"confusion_matrix": "Confusion matrix", "confusion_matrix_normalised": "Confusion matrix, normalised",
              "training_curves": "Training curves", "misclassified": "Misclassified examples"}
    lines += ["", "## Figures", ""]
    for key, title in titles.items():
        name = result["figures"].get(key)
        lines += [f"### {title}", "", f"![{title}]({name})" if name else "_not available_", ""]
    if result["notes"]:
        lines += ["## Notes", ""] + [f"- {n}" for n in result["notes"]] + [""]
    out.write_text("\n".join(lines), encoding="utf-8")
    return out
