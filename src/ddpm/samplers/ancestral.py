"""Ancestral sampling of p_θ(x_{t−1} | x_t): DDPM Algorithm 2, optionally on a respaced chain."""

from __future__ import annotations

import torch

from ddpm.errors import UserError
from ddpm.process import learned_log_variance, q_posterior_mean, reverse_mean_from_eps, reverse_variance
from ddpm.runtime import progress_bar
from ddpm.samplers.common import Denoiser, StepCallback, model_x0_eps, split_output
from ddpm.samplers.noise import Generators, randn_like
from ddpm.schedules import NoiseSchedule, respace


@torch.no_grad()
def ddpm_sample(
    denoise: Denoiser,
    x_T: torch.Tensor,
    schedule: NoiseSchedule,
    *,
    generator: Generators = None,
    prediction_type: str = "eps",
    variance: str = "beta",
    clip_x0: bool = False,
    timesteps: torch.Tensor | None = None,
    callback: StepCallback | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """DDPM Algorithm 2: for t = T…1, x_{t−1} = μ_θ(x_t, t) + σ_t z with z = 0 at the last step.

    ``x_T`` is the starting noise (draw it from N(0, I) with your generator). With the default
    full chain, ε-prediction and no clipping, μ_θ is the seed's formula (DDPM eq. 11) verbatim;
    otherwise μ_θ = μ̃_t(x̂_0, x_t) (DDPM eq. 7) with x̂_0 from the network. ``variance`` picks
    σ_t² = β_t, β̃_t, or ``learned``: exp(v log β_t + (1 − v) log β̃_t) from the network's v output
    (Nichol & Dhariwal 2021, eq. 15; on a respaced chain with its own β and β̃). ``timesteps``
    (increasing) restricts sampling to the respaced chain on those steps (Nichol & Dhariwal §4);
    the default is all T steps.
    """
    if timesteps is None:
        timesteps = torch.arange(schedule.num_timesteps)
        chain = schedule
    else:
        chain = respace(schedule, timesteps)
    learned = {}
    if variance == "learned":
        denoise = _keeping_v(denoise, learned)
    x = x_T
    steps = list(reversed(range(chain.num_timesteps)))
    for i, index in enumerate(progress_bar(steps, desc="ancestral", enabled=progress, leave=False)):
        t = timesteps[index].to(x.device)
        x0, eps = model_x0_eps(denoise, x, index, t, chain, prediction_type, clip_x0)
        if prediction_type == "eps" and not clip_x0:
            mean = reverse_mean_from_eps(x, index, eps, chain)
        else:
            mean = q_posterior_mean(x0, x, index, chain)
        if callback is not None:
            callback(i, t, x, x0)
        if index > 0:
            z = randn_like(x, generator)
            if variance == "learned":
                std = (0.5 * learned_log_variance(learned["v"], index, chain)).exp()
            else:
                std = reverse_variance(index, chain, x, variance).sqrt()
            x = mean + std * z
        else:
            x = mean
    return x


def _keeping_v(denoise: Denoiser, store: dict) -> Denoiser:
    """``denoise`` that also leaves the network's v output in ``store["v"]``."""

    def call(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = denoise(x, t)
        _, v = split_output(out, x)
        if v is None:
            raise UserError(
                "variance learned needs a model trained with diffusion.learned_variance = true; "
                "use --variance beta or beta_tilde"
            )
        store["v"] = v.to(x.dtype)
        return out

    return call
