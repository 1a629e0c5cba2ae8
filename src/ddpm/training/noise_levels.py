"""Which noise levels a training step draws: DDPM's uniform discrete t, or EDM's log-normal σ as a
fractional (continuous-time) timestep of the same schedule.

Every draw comes from the given generator on the CPU, for the whole global batch, so runs are
reproducible and N processes see exactly what one would (see :func:`training_noise`).
"""

from __future__ import annotations

import torch

from ddpm.schedules import NoiseSchedule, sigma_to_timestep

NOISE_LEVELS = ("uniform", "log-normal")


def sample_timesteps(batch_size: int, num_timesteps: int, generator: torch.Generator, device) -> torch.Tensor:
    """t ~ Uniform{0, …, T−1} (code indices of the paper's {1, …, T}), one per image."""
    return torch.randint(0, num_timesteps, (batch_size,), generator=generator).to(device)


def log_normal_sigmas(batch_size: int, mean: float, std: float, generator: torch.Generator) -> torch.Tensor:
    """ln σ ~ N(P_mean, P_std²), float64 (EDM §5, Table 1: P_mean = −1.2, P_std = 1.2)."""
    return torch.exp(mean + std * torch.randn(batch_size, generator=generator, dtype=torch.float64))


def log_normal_timesteps(
    batch_size: int, schedule: NoiseSchedule, mean: float, std: float, generator: torch.Generator
) -> torch.Tensor:
    """Log-normal σ's as fractional timesteps of ``schedule`` (float64), σ clipped to the schedule's
    [σ_min, σ_max]: the levels its samplers visit."""
    return sigma_to_timestep(log_normal_sigmas(batch_size, mean, std, generator), schedule)


def training_noise(
    x0: torch.Tensor,
    schedule: NoiseSchedule,
    generator: torch.Generator,
    levels: str = "uniform",
    mean: float = -1.2,
    std: float = 1.2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The random draws of a training step for a batch: (t, ε ~ N(0, I)), t first. ``uniform`` gives
    integer t (DDPM Algorithm 1); ``log-normal`` float t (:func:`log_normal_timesteps`)."""
    if levels == "uniform":
        t = sample_timesteps(x0.shape[0], schedule.num_timesteps, generator, x0.device)
    elif levels == "log-normal":
        t = log_normal_timesteps(x0.shape[0], schedule, mean, std, generator).to(x0.device)
    else:
        raise ValueError(f"unknown noise levels {levels!r}; choose from {', '.join(NOISE_LEVELS)}")
    eps = torch.randn(x0.shape, generator=generator).to(x0.device)
    return t, eps
