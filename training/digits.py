"""Write scikit-learn's bundled handwritten digits as a directory dataset.

It is the one real (non-synthetic) image set available offline, so it proves the directory pipeline on
data nobody drew for this project. The 8x8 images (values 0..16) are scaled to 0..255 and enlarged so the
same architectures and input sizes apply.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_digits(out: Path, size: int = 32, test_fraction: float = 0.25, seed: int = 0) -> dict[str, int]:
    """Write ``out/train/<digit>/`` and ``out/test/<digit>/`` PNGs; a stratified, seeded test split."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    totals = {"train": 0, "test": 0}
    for digit in range(10):
        idx = np.flatnonzero(digits.target == digit)
        rng.shuffle(idx)
        n_test = round(len(idx) * test_fraction)
        for split, chosen in (("test", idx[:n_test]), ("train", idx[n_test:])):
            folder = out / split / str(digit)
            folder.mkdir(parents=True, exist_ok=True)
            for i in chosen:
                pixels = (digits.images[i] * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
                Image.fromarray(pixels).resize((size, size), Image.Resampling.BILINEAR).save(folder / f"{i:04d}.png")
            totals[split] += len(chosen)
    return totals
