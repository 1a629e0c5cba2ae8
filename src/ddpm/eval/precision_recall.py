"""Improved precision and recall of generative models (Kynkäänniemi et al. 2019), k-NN manifolds."""

from __future__ import annotations

import numpy as np


def _pairwise_sq_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None] - 2 * a @ b.T, 0)


def knn_radii(features: np.ndarray, k: int = 3, chunk: int = 2048) -> np.ndarray:
    """Squared distance from each point to its k-th nearest other point in the same set."""
    radii = np.empty(len(features))
    for s in range(0, len(features), chunk):
        d = _pairwise_sq_dist(features[s : s + chunk], features)
        radii[s : s + chunk] = np.partition(d, k, axis=1)[:, k]  # index 0 is the point itself
    return radii


def manifold_coverage(
    queries: np.ndarray, support: np.ndarray, radii: np.ndarray, chunk: int = 2048
) -> float:
    """Fraction of ``queries`` inside at least one ball B(support_j, radius_j) (eq. 1 of the paper)."""
    inside = np.zeros(len(queries), dtype=bool)
    for s in range(0, len(queries), chunk):
        d = _pairwise_sq_dist(queries[s : s + chunk], support)
        inside[s : s + chunk] = (d <= radii[None]).any(1)
    return float(inside.mean())


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Precision: share of fakes on the real manifold (quality). Recall: share of reals on the fake
    manifold (diversity)."""
    precision = manifold_coverage(fake, real, knn_radii(real, k))
    recall = manifold_coverage(real, fake, knn_radii(fake, k))
    return precision, recall
