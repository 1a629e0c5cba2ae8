"""Kernel Inception Distance: unbiased MMD² with the cubic polynomial kernel (Bińkowski et al. 2018)."""

from __future__ import annotations

import numpy as np


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (xᵀy / d + 1)³, d the feature dimension."""
    return (x @ y.T / x.shape[1] + 1) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² = mean_{i≠j} k(x_i, x_j) + mean_{i≠j} k(y_i, y_j) − 2 mean_{i,j} k(x_i, y_j)."""
    m, n = len(x), len(y)
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    return float(
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
        + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
        - 2 * kxy.mean()
    )


def kernel_distance(
    x: np.ndarray, y: np.ndarray, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """KID: MMD² averaged over random subsets of both sets; returns (mean, standard deviation over
    subsets). The subsets overlap, so the deviation shows the spread of one subset's estimate,
    not the error of the mean (the convention of the KID paper's code and of clean-fid)."""
    size = min(subset_size, len(x), len(y))
    if size < 2:
        raise ValueError("KID needs at least two samples in each set")
    rng = np.random.default_rng(seed)
    values = np.array(
        [
            mmd2_unbiased(
                x[rng.choice(len(x), size, replace=False)], y[rng.choice(len(y), size, replace=False)]
            )
            for _ in range(subsets)
        ]
    )
    return float(values.mean()), float(values.std(ddof=1)) if subsets > 1 else 0.0
