"""Targets of progressive distillation (Salimans & Ho 2022, Algorithm 2), in the VP form
x_t = α_t x_0 + σ_t ε of the schedule (α = √ᾱ, σ = √(1−ᾱ)).

A student taking one deterministic DDIM step from t to s must land where two DDIM steps of the
teacher (t → the midpoint → s) land; the x_0 that makes one DDIM step do so is the regression target.
"""

from __future__ import annotations

import torch


def ddim_step(x0: torch.Tensor, xt: torch.Tensor, alpha_t, sigma_t, alpha_s, sigma_s) -> torch.Tensor:
    """x_s = α_s x̂_0 + σ_s ε̂ with ε̂ = (x_t − α_t x̂_0)/σ_t: DDIM eq. 12 with η = 0 (x̂_0 where σ_s = 0)."""
    eps = (xt - alpha_t * x0) / sigma_t
    return alpha_s * x0 + sigma_s * eps


def progressive_target(
    xt: torch.Tensor, xs: torch.Tensor, alpha_t, sigma_t, alpha_s, sigma_s
) -> torch.Tensor:
    """x̃ = (x_s − (σ_s/σ_t) x_t) / (α_s − (σ_s/σ_t) α_t): the x_0 whose single DDIM step from x_t
    reaches the teacher's x_s (Salimans & Ho 2022, Alg. 2); x̃ = x_s when s is the clean end (σ_s = 0)."""
    ratio = sigma_s / sigma_t
    return (xs - ratio * xt) / (alpha_s - ratio * alpha_t)


def truncated_snr_weight(alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """max(SNR, 1) = max(α²/σ², 1): Salimans & Ho's "truncated SNR" weight on the x_0 error (§4)."""
    return (alpha**2 / sigma**2).clamp(min=1)
