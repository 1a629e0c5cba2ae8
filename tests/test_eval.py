import numpy as np
import pytest
import torch
from scipy import linalg

from ddpm.eval import frechet_distance, gaussian_stats
from ddpm.eval.domain_classifier import SmallCNN


def _random_cov(rng, d):
    a = rng.normal(size=(d, d + 5))
    return a @ a.T / d


def test_frechet_distance_matches_scipy_sqrtm():
    rng = np.random.default_rng(0)
    d = 12
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    c1, c2 = _random_cov(rng, d), _random_cov(rng, d)
    reference = (mu1 - mu2) @ (mu1 - mu2) + np.trace(c1 + c2 - 2 * linalg.sqrtm(c1 @ c2).real)
    assert frechet_distance(mu1, c1, mu2, c2) == pytest.approx(reference, rel=1e-9)


def test_frechet_distance_closed_form_for_commuting_covariances():
    # diagonal covariances: d² = ‖Δμ‖² + Σ (σ₁ − σ₂)²
    s1, s2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    mu1, mu2 = np.zeros(3), np.array([1.0, 2.0, 0.0])
    expected = 5 + ((np.sqrt(s1) - np.sqrt(s2)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected)


def test_same_set_is_zero_and_distance_grows_with_noise():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2000, 8)) @ rng.normal(size=(8, 8))
    stats = gaussian_stats(x)
    assert abs(frechet_distance(*stats, *stats)) < 1e-8
    distances = [
        frechet_distance(*stats, *gaussian_stats(x + s * rng.normal(size=x.shape))) for s in (0.1, 0.5, 1, 2)
    ]
    assert all(a < b for a, b in zip(distances, distances[1:], strict=False))


def test_domain_classifier_shapes():
    model = SmallCNN().eval()
    x = torch.randn(3, 1, 32, 32)
    assert model.features(x).shape == (3, 128) and model(x).shape == (3, 10)
