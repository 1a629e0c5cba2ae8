"""Samplers of Karras et al. 2022 on the variance-exploding form x = x_0 + σ ε of the model:
Euler, Euler-ancestral and Heun (EDM Alg. 1 without churn), as in k-diffusion.

Inputs and outputs are in the model's variance-preserving scale (x_vp = α x_ve); the ODE
dx/dσ = (x − D(x; σ))/σ (EDM eq. 3 for σ(t) = t) is integrated in x_ve.
"""

from __future__ import annotations

import torch

from ddpm.runtime import progress_bar
from ddpm.samplers.common import NO_THRESHOLD, Denoiser, StepCallback, Threshold, predict_at
from ddpm.samplers.grid import NoiseGrid


def ancestral_step(sigma_from: torch.Tensor, sigma_to: torch.Tensor, eta: float = 1.0):
    """(σ_down, σ_up): go deterministically to σ_down, then add noise σ_up, with σ_down² + σ_up² = σ_to²
    and σ_up = η σ_to √(1 − σ_to²/σ_from²) (the ancestral split of k-diffusion)."""
    up = torch.minimum(sigma_to, eta * (sigma_to**2 * (sigma_from**2 - sigma_to**2) / sigma_from**2).sqrt())
    return (sigma_to**2 - up**2).sqrt(), up


class _VEDenoiser:
    """D(x_ve; σ_i) from a VP network at grid level i (or at an explicit σ and timestep)."""

    def __init__(self, denoise, grid, prediction_type, threshold):
        self.denoise, self.grid, self.prediction_type, self.threshold = (
            denoise,
            grid,
            prediction_type,
            threshold,
        )

    def __call__(self, x_ve: torch.Tensor, i: int) -> torch.Tensor:
        g = self.grid
        alpha = g.alphas[i].to(x_ve.dtype)
        x0, _ = predict_at(
            self.denoise,
            x_ve * alpha,
            g.timesteps[i].to(x_ve.device),
            g.alphas[i],
            g.vp_sigmas[i],
            self.prediction_type,
            self.threshold,
        )
        return x0


def _start(x: torch.Tensor, grid: NoiseGrid) -> torch.Tensor:
    return x / grid.alphas[0].to(x.dtype)


@torch.no_grad()
def euler_sample(
    denoise: Denoiser,
    x: torch.Tensor,
    grid: NoiseGrid,
    *,
    prediction_type: str = "eps",
    threshold: Threshold = NO_THRESHOLD,
    callback: StepCallback | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Euler's method on the probability-flow ODE: x ← x + (σ_{i+1} − σ_i) · (x − D(x; σ_i))/σ_i."""
    D = _VEDenoiser(denoise, grid, prediction_type, threshold)
    s = grid.sigmas.to(x.dtype)
    x = _start(x, grid)
    for i in progress_bar(range(len(grid)), desc="euler", enabled=progress, leave=False):
        x0 = D(x, i)
        if callback is not None:
            callback(i, grid.timesteps[i], x * grid.alphas[i].to(x.dtype), x0)
        x = x + (x - x0) / s[i] * (s[i + 1] - s[i])
    return x * grid.alphas[-1].to(x.dtype)


@torch.no_grad()
def euler_ancestral_sample(
    denoise: Denoiser,
    x: torch.Tensor,
    grid: NoiseGrid,
    *,
    eta: float = 1.0,
    prediction_type: str = "eps",
    threshold: Threshold = NO_THRESHOLD,
    generator: torch.Generator | None = None,
    callback: StepCallback | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Euler step to σ_down, then fresh noise of scale σ_up (see :func:`ancestral_step`)."""
    D = _VEDenoiser(denoise, grid, prediction_type, threshold)
    s = grid.sigmas.to(x.dtype)
    x = _start(x, grid)
    for i in progress_bar(range(len(grid)), desc="euler-a", enabled=progress, leave=False):
        x0 = D(x, i)
        if callback is not None:
            callback(i, grid.timesteps[i], x * grid.alphas[i].to(x.dtype), x0)
        down, up = ancestral_step(s[i], s[i + 1], eta)
        x = x + (x - x0) / s[i] * (down - s[i])
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        x = x + noise * up
    return x * grid.alphas[-1].to(x.dtype)


@torch.no_grad()
def heun_sample(
    denoise: Denoiser,
    x: torch.Tensor,
    grid: NoiseGrid,
    *,
    prediction_type: str = "eps",
    threshold: Threshold = NO_THRESHOLD,
    callback: StepCallback | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Heun's method (EDM Alg. 1, S_churn = 0): an Euler step, then the trapezoidal correction with
    the slope at the new point; the last step (to the final level) stays Euler: 2K − 1 evaluations."""
    D = _VEDenoiser(denoise, grid, prediction_type, threshold)
    s = grid.sigmas.to(x.dtype)
    x = _start(x, grid)
    for i in progress_bar(range(len(grid)), desc="heun", enabled=progress, leave=False):
        x0 = D(x, i)
        if callback is not None:
            callback(i, grid.timesteps[i], x * grid.alphas[i].to(x.dtype), x0)
        d = (x - x0) / s[i]
        dt = s[i + 1] - s[i]
        if i + 1 == len(grid):  # nothing to evaluate at the final level
            x = x + d * dt
            continue
        x_next = x + d * dt
        d_next = (x_next - D(x_next, i + 1)) / s[i + 1]
        x = x + (d + d_next) / 2 * dt
    return x * grid.alphas[-1].to(x.dtype)
