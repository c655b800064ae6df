"""conv1's kernels as numbers: the columns' colour specialisation of Figure 3 (Section 6.1).

The paper: "The kernels on GPU 1 are largely color-agnostic, while the kernels on GPU 2 are
largely color-specific. This kind of specialization occurs during every run". A kernel's colour
share is the part of its energy (sum of squared weights) outside its grey component, the mean of
R, G and B at each pixel: 0 for a grey kernel (the same in every channel), 2/3 for a kernel in one
channel only, 1 for a purely opponent one (red minus green). A column's colour is the mean share of
its kernels, in percent (conv1's first half of maps feeds the first column of conv2, the paper's
GPU 1). A run's specialisation is the gap between its two columns less the mean gap when the same
kernels are dealt to the columns at random: about 0 without specialisation, whatever the kernels,
so that a positive number is specialisation beyond chance. Torch-free: the caller passes conv1's
weights as a numpy array.
"""

from __future__ import annotations

import numpy as np

DEALS = 1000  # random deals of the kernels to the columns, for the chance gap
DEAL_SEED = 0  # fixed: the same net always gets the same number


def colour_share(weights: np.ndarray) -> np.ndarray:
    """Each kernel's share of energy outside its grey component, in [0, 1]: [kernels, 3, h, w] -> [kernels]."""
    w = np.asarray(weights, dtype=np.float64).reshape(len(weights), 3, -1)
    chroma = w - w.mean(axis=1, keepdims=True)
    total = (w ** 2).sum(axis=(1, 2))
    return (chroma ** 2).sum(axis=(1, 2)) / np.where(total > 0, total, 1.0)


def _gap(share: np.ndarray) -> float:
    half = len(share) // 2
    return abs(float(share[:half].mean() - share[half:].mean()))


def column_colour(weights: np.ndarray) -> dict[str, float]:
    """A two-column net's conv1 weights [kernels, 3, h, w] as metrics/evaluate.json's three numbers:
    each column's colour (percent) and the run's specialisation beyond chance (points)."""
    share = 100 * colour_share(weights)
    half = len(share) // 2
    rng = np.random.default_rng(DEAL_SEED)
    chance = float(np.mean([_gap(rng.permutation(share)) for _ in range(DEALS)]))
    return {"conv1_colour_column1": round(float(share[:half].mean()), 4),
            "conv1_colour_column2": round(float(share[half:].mean()), 4),
            "conv1_column_specialisation": round(_gap(share) - chance, 4)}


__all__ = ["colour_share", "column_colour"]
