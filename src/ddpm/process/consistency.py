"""The consistency-model boundary condition (Song et al. 2023, §3 and App. C)."""

from __future__ import annotations

import torch


def consistency_skip(sigma: torch.Tensor, sigma_min: float, sigma_data: float) -> torch.Tensor:
    """c_skip(σ) = σ_d² / ((σ − σ_min)² + σ_d²) (Song et al. 2023, App. C): 1 at σ_min, so
    f(x, σ_min) = c_skip x + (1 − c_skip) D(x) = x exactly, and → 0 as σ grows."""
    return sigma_data**2 / ((sigma - sigma_min) ** 2 + sigma_data**2)
