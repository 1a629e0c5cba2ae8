"""Terms of the variational bound on −log p(x_0) (DDPM eq. 5): Gaussian KLs and the decoder."""

from __future__ import annotations

import math

import torch

from ddpm.process.forward import extract
from ddpm.process.posterior import q_posterior_mean
from ddpm.schedules import NoiseSchedule


def normal_kl(mean1, logvar1, mean2, logvar2) -> torch.Tensor:
    """KL(N(μ₁, e^{v₁}) ‖ N(μ₂, e^{v₂})) = ½(v₂ − v₁ + e^{v₁−v₂} + (μ₁−μ₂)² e^{−v₂} − 1), in nats."""
    mean1, logvar1, mean2, logvar2 = (
        torch.as_tensor(a, dtype=torch.float64) for a in (mean1, logvar1, mean2, logvar2)
    )
    return 0.5 * (
        logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2) - 1
    )


def standard_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    """Φ(x) = ½(1 + erf(x/√2))."""
    return 0.5 * (1 + torch.erf(x / math.sqrt(2)))


def discretized_gaussian_log_likelihood(
    x0: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor
) -> torch.Tensor:
    """log ∫ N(x; μ, σ²) over the bin of x_0 among 256 levels of [−1, 1], edges at ±∞ (DDPM eq. 13).

    ``log_scale`` is log σ. Returns nats per element.
    """
    x0, mean, log_scale = (torch.as_tensor(a, dtype=torch.float64) for a in (x0, mean, log_scale))
    centered = x0 - mean
    inv_std = torch.exp(-log_scale)
    cdf_plus = standard_normal_cdf(inv_std * (centered + 1 / 255))
    cdf_minus = standard_normal_cdf(inv_std * (centered - 1 / 255))
    log_cdf_plus = cdf_plus.clamp(min=1e-12).log()
    log_one_minus_cdf_minus = (1 - cdf_minus).clamp(min=1e-12).log()
    log_delta = (cdf_plus - cdf_minus).clamp(min=1e-12).log()
    return torch.where(x0 < -0.999, log_cdf_plus, torch.where(x0 > 0.999, log_one_minus_cdf_minus, log_delta))


def prior_kl(x0: torch.Tensor, schedule: NoiseSchedule) -> torch.Tensor:
    """L_T = KL(q(x_T | x_0) ‖ N(0, I)) per element, nats (DDPM eq. 5; no learned parameters)."""
    T = schedule.num_timesteps - 1
    mean = extract(schedule.sqrt_alpha_bar, T, x0.double()) * x0.double()
    logvar = torch.log1p(-extract(schedule.alpha_bar, T, x0.double()))
    return normal_kl(mean, logvar, torch.zeros(()), torch.zeros(()))


def reverse_log_variance(schedule: NoiseSchedule, kind: str) -> torch.Tensor:
    """(T,) log σ_t² of p_θ for the bound: β̃ with its t = 1 value clipped, or β with β̃_2 at t = 1
    (the fixed-small / fixed-large conventions of improved-diffusion, so the decoder is defined)."""
    if kind == "beta_tilde":
        return schedule.posterior_log_variance_clipped
    if kind == "beta":
        return torch.cat([schedule.posterior_variance[1:2], schedule.betas[1:]]).log()
    raise ValueError(f"unknown variance type {kind!r}")


def bound_term(
    x0: torch.Tensor,
    xt: torch.Tensor,
    t: torch.Tensor,
    model_mean: torch.Tensor,
    model_logvar: torch.Tensor,
    schedule: NoiseSchedule,
) -> torch.Tensor:
    """The bound's term at each image's step, nats per element (DDPM eq. 5): L_{t−1} = KL(q(x_{t−1} |
    x_t, x_0) ‖ N(model_mean, e^{model_logvar})) for t ≥ 1 (code index), L_0 = −log p(x_0 | x_1) by the
    discretised Gaussian decoder (eq. 13) where t = 0."""
    true_mean = q_posterior_mean(x0, xt, t, schedule)
    true_logvar = extract(schedule.posterior_log_variance_clipped, t, xt)
    kl = normal_kl(true_mean, true_logvar, model_mean, model_logvar)
    decoder = -discretized_gaussian_log_likelihood(x0, model_mean, 0.5 * model_logvar)
    first = (torch.as_tensor(t) == 0).reshape(-1, *[1] * (x0.ndim - 1)).to(kl.device)
    return torch.where(first, decoder, kl)
