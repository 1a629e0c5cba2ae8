"""The forward (noising) process q: one step of the chain and the closed-form jump."""

from __future__ import annotations

import torch

from ddpm.schedules import NoiseSchedule, timestep_to_sigma


def extract(values: torch.Tensor, t: torch.Tensor | int, like: torch.Tensor) -> torch.Tensor:
    """``values[t]`` shaped (B, 1, 1, …) to broadcast against ``like``, in ``like``'s dtype/device.

    ``t`` is an int (same step for the whole batch) or a (B,) integer tensor.
    """
    t = torch.as_tensor(t, device=values.device, dtype=torch.long)
    out = values[t].to(device=like.device, dtype=like.dtype)
    return out.reshape(out.shape + (1,) * (like.ndim - out.ndim))


def alpha_sigma_at(
    t: torch.Tensor | int, schedule: NoiseSchedule, like: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(α, σ_vp) = (√ᾱ_t, √(1−ᾱ_t)) shaped like :func:`extract`'s output. An integer t reads the
    schedule's tables; a floating-point (fractional) t takes σ = σ(t) between the steps
    (:func:`ddpm.schedules.timestep_to_sigma`), α = 1/√(1 + σ²), σ_vp = σ α (continuous time)."""
    if not (torch.is_tensor(t) and t.is_floating_point()):
        return extract(schedule.sqrt_alpha_bar, t, like), extract(schedule.sqrt_one_minus_alpha_bar, t, like)
    sigma = timestep_to_sigma(t.detach().cpu(), schedule)
    alpha = 1 / (1 + sigma**2).sqrt()
    shape = (-1,) + (1,) * (like.ndim - 1)
    cast = dict(device=like.device, dtype=like.dtype)
    return alpha.to(**cast).reshape(shape), (sigma * alpha).to(**cast).reshape(shape)


def q_step_sample(
    x_prev: torch.Tensor, t: torch.Tensor | int, schedule: NoiseSchedule, noise: torch.Tensor
) -> torch.Tensor:
    """One forward step x_t = √(1−β_t) · x_{t−1} + √β_t · ε, i.e. a draw of q(x_t | x_{t−1}) (DDPM eq. 2)."""
    beta = extract(schedule.betas, t, x_prev)
    return (1 - beta).sqrt() * x_prev + beta.sqrt() * noise


def q_sample(
    x0: torch.Tensor, t: torch.Tensor | int, schedule: NoiseSchedule, noise: torch.Tensor
) -> torch.Tensor:
    """Closed-form jump x_t = √ᾱ_t · x_0 + √(1−ᾱ_t) · ε, a draw of q(x_t | x_0) (DDPM eq. 4); t may be
    fractional (:func:`alpha_sigma_at`)."""
    alpha, sigma = alpha_sigma_at(t, schedule, x0)
    return alpha * x0 + sigma * noise
