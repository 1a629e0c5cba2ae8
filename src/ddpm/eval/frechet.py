"""The Fréchet distance between Gaussian fits of two feature sets (as in FID)."""

from __future__ import annotations

import numpy as np


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of (N, D) features, in float64."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError("need at least two feature vectors of shape (N, D)")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def trace_sqrt_product(cov1: np.ndarray, cov2: np.ndarray) -> float:
    """Tr((Σ₁ Σ₂)^{1/2}) for symmetric PSD Σ₁, Σ₂, as Σ √λ_i of the symmetric Σ₁^{1/2} Σ₂ Σ₁^{1/2}
    (same eigenvalues as Σ₁ Σ₂), which stays real and stable where a general sqrtm does not."""
    w, v = np.linalg.eigh(cov1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    eig = np.linalg.eigvalsh(root1 @ cov2 @ root1)
    return float(np.sqrt(np.clip(eig, 0, None)).sum())


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """d² = ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁ Σ₂)^{1/2}) (Fréchet/Wasserstein-2 between Gaussians;
    Heusel et al. 2017, eq. 6)."""
    diff = np.asarray(mu1, np.float64) - np.asarray(mu2, np.float64)
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * trace_sqrt_product(cov1, cov2))
