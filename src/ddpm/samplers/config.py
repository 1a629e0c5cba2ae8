"""Choosing a sampler by name: its configuration and the single entry point ``sample``."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ddpm.process import VARIANCE_TYPES
from ddpm.samplers.ancestral import ddpm_sample
from ddpm.samplers.common import Denoiser, StepCallback
from ddpm.samplers.ddim import ddim_sample
from ddpm.samplers.spacing import SPACINGS, spaced_timesteps
from ddpm.schedules import NoiseSchedule

SAMPLERS = {
    "ancestral": "DDPM Algorithm 2 (stochastic); with steps < T on the respaced chain",
    "ddim": "DDIM (Song et al. 2021); eta = 0 deterministic, eta = 1 ancestral-like",
}


@dataclass
class SamplerConfig:
    """How to draw samples: which sampler, how many steps, and its options."""

    sampler: str = field(default="ancestral", metadata={"help": f"one of: {', '.join(SAMPLERS)}"})
    steps: int = field(default=0, metadata={"help": "network evaluations; 0 = all T steps"})
    spacing: str = field(default="trailing", metadata={"help": f"timestep spacing: {', '.join(SPACINGS)}"})
    eta: float = field(default=0.0, metadata={"help": "DDIM stochasticity η (0 = deterministic)"})
    variance: str = field(default="beta", metadata={"help": "ancestral σ_t²: beta or beta_tilde"})
    clip_x0: bool = field(default=True, metadata={"help": "clamp the predicted x_0 to [-1, 1]"})

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; choose one of {', '.join(SAMPLERS)}")
        if self.spacing not in SPACINGS:
            raise ValueError(f"unknown spacing {self.spacing!r}; choose one of {', '.join(SPACINGS)}")
        if self.variance not in VARIANCE_TYPES:
            raise ValueError(f"unknown variance {self.variance!r}; choose beta or beta_tilde")
        if self.steps < 0 or self.eta < 0:
            raise ValueError("steps and eta must be ≥ 0")


def sample(
    config: SamplerConfig,
    denoise: Denoiser,
    x_T: torch.Tensor,
    schedule: NoiseSchedule,
    prediction_type: str,
    generator: torch.Generator | None = None,
    callback: StepCallback | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Run the configured sampler from ``x_T``."""
    T = schedule.num_timesteps
    steps = config.steps or T
    timesteps = spaced_timesteps(T, steps, config.spacing) if steps != T else torch.arange(T)
    common = dict(
        generator=generator,
        prediction_type=prediction_type,
        clip_x0=config.clip_x0,
        callback=callback,
        progress=progress,
    )
    if config.sampler == "ancestral":
        full = steps == T
        return ddpm_sample(
            denoise,
            x_T,
            schedule,
            variance=config.variance,
            timesteps=None if full else timesteps,
            **common,
        )
    return ddim_sample(denoise, x_T, schedule, timesteps, eta=config.eta, **common)
