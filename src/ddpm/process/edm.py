"""EDM's preconditioning and loss weight (Karras et al. 2022, Table 1 and §5), in the noise level σ of
the variance-exploding form x = x_0 + σ n, with σ_data the standard deviation of the data.

The denoiser is D(x; σ) = c_skip(σ) x + c_out(σ) F(c_in(σ) x; c_noise(σ)) for a raw network F; the
coefficients make F's input and its training target unit-variance at every σ, and the weight λ(σ)
makes the effective weight on F's error one (λ c_out² = 1). A VP model's x_t = α x_0 + σ_vp ε is
x = x_t / α with σ = σ_vp / α (:mod:`ddpm.schedules`).
"""

from __future__ import annotations

import torch


def edm_coefficients(
    sigma: torch.Tensor, sigma_data: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(c_skip, c_out, c_in, c_noise) at σ (EDM Table 1): c_skip = σ_d²/(σ² + σ_d²),
    c_out = σ σ_d/√(σ² + σ_d²), c_in = 1/√(σ² + σ_d²), c_noise = ¼ ln σ."""
    total = sigma**2 + sigma_data**2
    return sigma_data**2 / total, sigma * sigma_data / total.sqrt(), 1 / total.sqrt(), sigma.log() / 4


def edm_loss_weight(sigma: torch.Tensor, sigma_data: float) -> torch.Tensor:
    """λ(σ) = (σ² + σ_d²)/(σ σ_d)² on ‖D(x; σ) − x_0‖² (EDM Table 1, eq. 8): 1/c_out²."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2
