"""Samplers of Karras et al. 2022 on the variance-exploding form x = x_0 + σ ε of the model:
Euler, Euler-ancestral and Heun (EDM Alg. 1 without churn), as in k-diffusion.

Inputs and outputs are in the model's variance-preserving scale (x_vp = α x_ve); the ODE
dx/dσ = (x − D(x; σ))/σ (EDM eq. 3 for σ(t) = t) is integrated in x_ve.

A first level at σ = ∞ (zero terminal SNR) has no finite x_ve: there x_T is x_vp itself (α = 0,
σ_vp = 1), and the step out of it is the limit of the Euler step, x_ve = x̂_0 + σ_1 ε̂ (DDIM's step;
Heun's correction and the ancestral split at σ = ∞ reduce to it, with noise σ_up = η σ_1).
"""

from __future__ import annotations

import torch

from ddpm.runtime import progress_bar
from ddpm.samplers.common import NO_THRESHOLD, Denoiser, StepCallback, Threshold, predict_at
from ddpm.samplers.grid import NoiseGrid
from ddpm.samplers.noise import Generators, randn_like


def ancestral_step(sigma_from: torch.Tensor, sigma_to: torch.Tensor, eta: float = 1.0):
    """(σ_down, σ_up): go deterministically to σ_down, then add noise σ_up, with σ_down² + σ_up² = σ_to²
    and σ_up = η σ_to √(1 − σ_to²/σ_from²) (the ancestral split of k-diffusion)."""
    up = torch.minimum(sigma_to, eta * (sigma_to**2 * (sigma_from**2 - sigma_to**2) / sigma_from**2).sqrt())
    up = torch.where(torch.isinf(sigma_from), torch.minimum(sigma_to, eta * sigma_to), up)  # the limit
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
    """x_ve at the first level; at σ = ∞ x stays x_vp (see :func:`_out_of_infinity`)."""
    return x if torch.isinf(grid.sigmas[0]) else x / grid.alphas[0].to(x.dtype)


def _out_of_infinity(denoise, x, grid, prediction_type, threshold, callback):
    """(x̂_0, ε̂) at a σ = ∞ first level, from x = x_T (= x_vp there), after the step callback."""
    t = grid.timesteps[0].to(x.device)
    x0, eps = predict_at(denoise, x, t, grid.alphas[0], grid.vp_sigmas[0], prediction_type, threshold)
    if callback is not None:
        callback(0, grid.timesteps[0], x, x0)
    return x0, eps


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
        if torch.isinf(s[i]):
            x0, eps = _out_of_infinity(denoise, x, grid, prediction_type, threshold, callback)
            x = x0 + s[i + 1] * eps
            continue
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
    generator: Generators = None,
    callback: StepCallback | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Euler step to σ_down, then fresh noise of scale σ_up (see :func:`ancestral_step`)."""
    D = _VEDenoiser(denoise, grid, prediction_type, threshold)
    s = grid.sigmas.to(x.dtype)
    x = _start(x, grid)
    for i in progress_bar(range(len(grid)), desc="euler-a", enabled=progress, leave=False):
        down, up = ancestral_step(s[i], s[i + 1], eta)
        if torch.isinf(s[i]):
            x0, eps = _out_of_infinity(denoise, x, grid, prediction_type, threshold, callback)
            x = x0 + down * eps
        else:
            x0 = D(x, i)
            if callback is not None:
                callback(i, grid.timesteps[i], x * grid.alphas[i].to(x.dtype), x0)
            x = x + (x - x0) / s[i] * (down - s[i])
        noise = randn_like(x, generator)
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
        the slope at the new point; the last step (to the final level) stays Euler: 2K − 1 evaluations
    (one fewer after a σ = ∞ first level, whose step is Euler's too)."""
    D = _VEDenoiser(denoise, grid, prediction_type, threshold)
    s = grid.sigmas.to(x.dtype)
    x = _start(x, grid)
    for i in progress_bar(range(len(grid)), desc="heun", enabled=progress, leave=False):
        if torch.isinf(s[i]):  # no slope to average over an infinite step: Euler's limit
            x0, eps = _out_of_infinity(denoise, x, grid, prediction_type, threshold, callback)
            x = x0 + s[i + 1] * eps
            continue
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
