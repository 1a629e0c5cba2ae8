"""How the denoising loss weighs each noise level, as a weight on the network's own squared error.

Every weighting is stated as w(SNR) on the x_0 error ‖x̂_0 − x_0‖² (Kingma et al. 2021's common
form), then divided by what the prediction type already carries: with x_t = α x_0 + σ ε,
‖ε̂ − ε‖² = SNR ‖x̂_0 − x_0‖² and ‖v̂ − v‖² = (SNR + 1) ‖x̂_0 − x_0‖² (SNR = α²/σ² = 1/σ_ve²).

- ``simple``: the target's own MSE (DDPM's L_simple for ε; w = SNR, 1, SNR + 1 for ε, x_0, v);
- ``min-snr``: w = min(SNR, γ) (Hang et al. 2023, eq. 9): high-SNR steps no longer dominate;
- ``edm``: w = λ(σ) = (σ² + σ_d²)/(σ σ_d)² = (1 + σ_d² SNR)/σ_d² (Karras et al. 2022, Table 1);
- ``snr+1``: w = SNR + 1, the v-MSE, for any target (Salimans & Ho 2022, "SNR+1" weighting);
- ``vlb``: the true variational bound's weight of each discrete step (:func:`bound_weights`).
"""

from __future__ import annotations

import torch

from ddpm.process.edm import edm_loss_weight
from ddpm.process.forward import alpha_sigma_at
from ddpm.schedules import NoiseSchedule

LOSS_WEIGHTINGS = ("simple", "vlb", "min-snr", "edm", "snr+1")


def x0_error_scale(snr: torch.Tensor, prediction_type: str) -> torch.Tensor:
    """k with ‖target̂ − target‖² = k ‖x̂_0 − x_0‖²: SNR for ε, 1 for x_0, SNR + 1 for v."""
    if prediction_type == "eps":
        return snr
    if prediction_type == "x0":
        return torch.ones_like(snr)
    if prediction_type == "v":
        return snr + 1
    raise ValueError(f"no SNR weighting for prediction type {prediction_type!r}; use simple or vlb")


def min_snr_weight(snr: torch.Tensor, gamma: float) -> torch.Tensor:
    """w = min(SNR, γ) on the x_0 error (Min-SNR-γ, Hang et al. 2023, eq. 9)."""
    return snr.clamp(max=gamma)


def x0_loss_weight(snr: torch.Tensor, weighting: str, gamma: float = 5.0, sigma_data: float = 0.5):
    """w(SNR) on ‖x̂_0 − x_0‖² for an SNR weighting (``min-snr``, ``edm`` or ``snr+1``)."""
    if weighting == "min-snr":
        return min_snr_weight(snr, gamma)
    if weighting == "edm":
        return edm_loss_weight(snr.rsqrt(), sigma_data)
    if weighting == "snr+1":
        return snr + 1
    raise ValueError(f"{weighting!r} is not an SNR weighting")


def target_loss_weight(
    snr: torch.Tensor,
    weighting: str,
    prediction_type: str,
    gamma: float = 5.0,
    sigma_data: float = 0.5,
) -> torch.Tensor:
    """The weight on the prediction type's own squared error that makes the loss w(SNR)·‖x̂_0 − x_0‖²:
    w / :func:`x0_error_scale` (all ones for ``simple``)."""
    if weighting == "simple":
        return torch.ones_like(snr)
    return x0_loss_weight(snr, weighting, gamma, sigma_data) / x0_error_scale(snr, prediction_type)


def bound_weights(schedule: NoiseSchedule, prediction_type: str) -> torch.Tensor:
    """(T,) weight of ‖target − f_θ‖² in the bound term L_{t−1} = ‖μ̃_t − μ_θ‖² / (2σ_t²) (DDPM eq. 8,
    σ_t² = β_t), per prediction type: (∂μ/∂target)² / (2β_t) with μ = c_0 x̂_0 + c_t x_t (eq. 7), so
    μ: 1, x_0: c_0², ε: β_t² / (α_t (1−ᾱ_t)) (eq. 12), v: c_0² (1−ᾱ_t); over 2β_t. Normalised to
    mean 1 over t (only the relative weighting matters to Adam); the first step, L_0, is weighted
    like the others (a Gaussian stand-in for DDPM's discrete decoder)."""
    c0 = schedule.posterior_mean_coef_x0
    slope = {
        "mu": torch.ones_like(c0),
        "x0": c0,
        "eps": schedule.betas / (schedule.alphas.sqrt() * schedule.sqrt_one_minus_alpha_bar),
        "v": c0 * schedule.sqrt_one_minus_alpha_bar,
    }[prediction_type]
    weights = slope.pow(2) / (2 * schedule.betas)
    return weights / weights.mean()


def image_weights(
    t: torch.Tensor,
    schedule: NoiseSchedule,
    weighting: str,
    prediction_type: str,
    gamma: float = 5.0,
    sigma_data: float = 0.5,
) -> torch.Tensor | None:
    """(B,) float64 weight of each image's squared error at its (integer or fractional) timestep t;
    None for ``simple`` (the plain mean). ``vlb`` needs integer t."""
    if weighting == "simple":
        return None
    if weighting == "vlb":
        if t.is_floating_point():
            raise ValueError("the vlb weighting is defined at the discrete steps only (uniform noise levels)")
        return bound_weights(schedule, prediction_type)[t.cpu()]
    alpha, sigma = alpha_sigma_at(t.cpu(), schedule, torch.zeros(len(t), dtype=torch.float64))
    snr = (alpha / sigma) ** 2
    return target_loss_weight(snr, weighting, prediction_type, gamma, sigma_data)
