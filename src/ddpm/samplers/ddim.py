"""DDIM: the non-Markovian sampler with stochasticity η (Song et al. 2021)."""

from __future__ import annotations

import torch

from ddpm.process.forward import extract
from ddpm.runtime import progress_bar
from ddpm.samplers.common import Denoiser, StepCallback, model_x0_eps
from ddpm.samplers.noise import Generators, randn_like
from ddpm.schedules import NoiseSchedule, respace


def ddim_sigma(alpha_bar: torch.Tensor, alpha_bar_prev: torch.Tensor, eta: float) -> torch.Tensor:
    """σ_t(η) = η · √((1−ᾱ_{t−1})/(1−ᾱ_t)) · √(1 − ᾱ_t/ᾱ_{t−1}) (DDIM eq. 16)."""
    return eta * ((1 - alpha_bar_prev) / (1 - alpha_bar) * (1 - alpha_bar / alpha_bar_prev)).sqrt()


@torch.no_grad()
def ddim_sample(
    denoise: Denoiser,
    x_T: torch.Tensor,
    schedule: NoiseSchedule,
    timesteps: torch.Tensor | None = None,
    *,
    eta: float = 0.0,
    generator: Generators = None,
    prediction_type: str = "eps",
    clip_x0: bool = False,
    callback: StepCallback | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """DDIM eq. 12: x_{t−1} = √ᾱ_{t−1} x̂_0 + √(1−ᾱ_{t−1}−σ_t²) ε̂ + σ_t z over ``timesteps``.

    η = 0 is deterministic; η = 1 is ancestral sampling with σ_t² = β̃_t on the same chain. After
    the first (lowest) timestep, ᾱ_{t−1} = 1 and the result is x̂_0. ``timesteps`` (increasing)
    default to all T steps.
    """
    if timesteps is None:
        timesteps = torch.arange(schedule.num_timesteps)
    chain = respace(schedule, timesteps)
    x = x_T
    steps = list(reversed(range(chain.num_timesteps)))
    for i, index in enumerate(progress_bar(steps, desc="ddim", enabled=progress, leave=False)):
        t = timesteps[index].to(x.device)
        x0, eps = model_x0_eps(denoise, x, index, t, chain, prediction_type, clip_x0)
        if callback is not None:
            callback(i, t, x, x0)
        ab = extract(chain.alpha_bar, index, x)
        ab_prev = extract(chain.alpha_bar_prev, index, x)
        sigma = ddim_sigma(ab, ab_prev, eta)
        x = ab_prev.sqrt() * x0 + (1 - ab_prev - sigma**2).clamp(min=0).sqrt() * eps
        if eta > 0 and index > 0:
            x = x + sigma * randn_like(x, generator)
    return x
