"""Multistep consistency sampling (Song et al. 2023, Algorithm 1) over a :class:`NoiseGrid`."""

from __future__ import annotations

import torch

from ddpm.runtime import progress_bar
from ddpm.samplers.common import NO_THRESHOLD, Denoiser, StepCallback, Threshold, predict_at
from ddpm.samplers.grid import NoiseGrid
from ddpm.samplers.noise import Generators, randn_like


@torch.no_grad()
def consistency_sample(
    denoise: Denoiser,
    x: torch.Tensor,
    grid: NoiseGrid,
    *,
    prediction_type: str = "x0",
    threshold: Threshold = NO_THRESHOLD,
    generator: Generators = None,
    callback: StepCallback | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """x̂_0 = f(x_T, σ_0); then at each later level σ_i: x ← x̂_0 + σ_i z (VE form), x̂_0 = f(x, σ_i).
    One network evaluation per grid level; the grid's final level is not visited. For a consistency
    model f is the model's x̂_0 itself; for any other model this jumps to its x̂_0 and re-noises."""
    x0 = x
    for i in progress_bar(range(len(grid)), desc="consistency", enabled=progress, leave=False):
        alpha, sigma = grid.alphas[i].to(x.dtype), grid.vp_sigmas[i].to(x.dtype)
        if i > 0:
            x = alpha * x0 + sigma * randn_like(x, generator)
        x0, _ = predict_at(
            denoise, x, grid.timesteps[i].to(x.device), alpha, sigma, prediction_type, threshold
        )
        if callback is not None:
            callback(i, grid.timesteps[i], x, x0)
    return x0
