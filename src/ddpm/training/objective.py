"""The training objective: DDPM Algorithm 1 (and its x_0 / v / μ variants), with L_simple's uniform
weight over t or the weight the true variational bound gives each step."""

from __future__ import annotations

import torch

from ddpm.process import extract, q_sample, training_target
from ddpm.schedules import NoiseSchedule

LOSS_WEIGHTINGS = ("simple", "vlb")


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


def sample_timesteps(batch_size: int, num_timesteps: int, generator: torch.Generator, device) -> torch.Tensor:
    """t ~ Uniform{0, …, T−1} (code indices of the paper's {1, …, T}), one per image."""
    return torch.randint(0, num_timesteps, (batch_size,), generator=generator).to(device)


def training_noise(x0: torch.Tensor, num_timesteps: int, generator: torch.Generator):
    """The random draws of Algorithm 1 for a batch: (t ~ U, ε ~ N(0, I)), from ``generator`` on the CPU
    (so runs are reproducible, and a batch split across processes draws exactly what one process would)."""
    t = sample_timesteps(x0.shape[0], num_timesteps, generator, x0.device)
    eps = torch.randn(x0.shape, generator=generator).to(x0.device)
    return t, eps


def denoising_loss(
    model_output_fn,
    x0: torch.Tensor,
    t: torch.Tensor,
    eps: torch.Tensor,
    schedule: NoiseSchedule,
    prediction_type: str = "eps",
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """‖target − f_θ(x_t, t)‖² with x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε, averaged over pixels and batch
    (L_simple, DDPM eq. 14); the target is ε, x_0, v or μ. ``weights`` (T,) scale each image's
    error by the weight of its step (:func:`bound_weights` gives the true bound's)."""
    xt = q_sample(x0, t, schedule, eps)
    target = training_target(x0, eps, t, schedule, prediction_type)
    out = model_output_fn(xt, t)
    if weights is None:
        return torch.nn.functional.mse_loss(out.float(), target.float())
    error = (out.float() - target.float()).pow(2)
    return (extract(weights.float(), t, error) * error).mean()


def diffusion_loss(
    model_output_fn,
    x0: torch.Tensor,
    schedule: NoiseSchedule,
    generator: torch.Generator,
    prediction_type: str = "eps",
) -> torch.Tensor:
    """DDPM Algorithm 1: t ~ U, ε ~ N(0, I), x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε, loss ‖ε − ε_θ(x_t, t)‖².

    ``model_output_fn(x_t, t)`` is the network; with ``prediction_type`` x0 or v the regression
    target is x_0 or v instead of ε (see :func:`denoising_loss`).
    """
    t, eps = training_noise(x0, schedule.num_timesteps, generator)
    return denoising_loss(model_output_fn, x0, t, eps, schedule, prediction_type)


def regression_output(model_output_fn, like: torch.Tensor) -> torch.Tensor:
    """f_θ(0, 0 | y): the non-diffusion baseline's answer for a batch shaped like ``like`` — the
    network asked for x directly from its conditioning input y (bound in ``model_output_fn``), in
    one pass from an all-zero x_t at t = 0."""
    t = torch.zeros(like.shape[0], dtype=torch.long, device=like.device)
    return model_output_fn(torch.zeros_like(like), t)


def regression_loss(model_output_fn, x0: torch.Tensor) -> torch.Tensor:
    """The non-diffusion baseline's loss ‖x_0 − f_θ(0, 0 | y)‖² (:func:`regression_output`); it
    converges to E[x | y], the blurry conditional mean."""
    return torch.nn.functional.mse_loss(regression_output(model_output_fn, x0).float(), x0.float())
