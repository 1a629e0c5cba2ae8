"""Choosing a sampler by name: its configuration and the single entry point ``sample``."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ddpm.process import VARIANCE_TYPES
from ddpm.samplers.common import Denoiser, StepCallback, Threshold
from ddpm.samplers.grid import FINAL_LEVELS, NoiseGrid, discrete_grid, karras_grid, logsnr_grid
from ddpm.samplers.noise import Generators
from ddpm.samplers.spacing import SPACINGS, spaced_timesteps
from ddpm.samplers.table import SAMPLER_TABLE
from ddpm.schedules import NoiseSchedule

SAMPLERS = {name: entry.description for name, entry in SAMPLER_TABLE.items()}
DISCRETE_ONLY = tuple(name for name, entry in SAMPLER_TABLE.items() if entry.discrete)
STOCHASTIC = tuple(name for name, entry in SAMPLER_TABLE.items() if entry.stochastic)
CONTINUOUS_SPACINGS = ("karras", "logsnr")
DEFAULT_SPACING = {name: entry.default_spacing for name, entry in SAMPLER_TABLE.items()}


@dataclass
class SamplerConfig:
    """How to draw samples: which sampler, how many steps, on which grid, and its options."""

    sampler: str = field(default="ancestral", metadata={"help": f"one of: {', '.join(SAMPLERS)}"})
    steps: int = field(default=0, metadata={"help": "sampling steps; 0 = all T steps"})
    spacing: str = field(
        default="auto",
        metadata={"help": f"timesteps: auto, {', '.join(SPACINGS)}, karras (EDM σ's) or logsnr (uniform λ)"},
    )
    eta: float = field(default=0.0, metadata={"help": "DDIM / Euler-ancestral stochasticity η"})
    variance: str = field(default="beta", metadata={"help": "ancestral σ_t²: beta or beta_tilde"})
    clip_x0: bool = field(default=True, metadata={"help": "clamp the predicted x_0 to [-1, 1]"})
    dynamic_threshold: float = field(
        default=0.0,
        metadata={"help": "Imagen dynamic thresholding percentile of |x_0| (e.g. 0.995); 0 = off"},
    )
    order: int = field(default=0, metadata={"help": "UniPC order 1-3; 0 = the sampler's default (2)"})
    dpm_algorithm: str = field(
        default="dpmsolver++",
        metadata={"help": "single-step DPM-Solver form: dpmsolver++ (x0) or dpmsolver (ε)"},
    )
    final_level: str = field(
        default="zero", metadata={"help": "where ODE/multistep samplers end: zero or sigma_min"}
    )
    lower_order_final: bool = field(
        default=True, metadata={"help": "lower solver orders on the last steps (stabler at < 15 steps)"}
    )
    rho: float = field(default=7.0, metadata={"help": "ρ of Karras σ's"})
    guidance: float = field(
        default=1.0, metadata={"help": "classifier-free guidance scale (0 unconditional, 1 conditional)"}
    )

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; choose one of {', '.join(SAMPLERS)}")
        if self.spacing not in ("auto", *CONTINUOUS_SPACINGS, *SPACINGS):
            raise ValueError(
                f"unknown spacing {self.spacing!r}; choose auto, karras, logsnr, {', '.join(SPACINGS)}"
            )
        if self.spacing in CONTINUOUS_SPACINGS and self.sampler in DISCRETE_ONLY:
            raise ValueError(
                f"{self.sampler} visits training timesteps only; use linspace, leading or trailing"
            )
        if self.variance not in VARIANCE_TYPES:
            raise ValueError(f"unknown variance {self.variance!r}; choose beta or beta_tilde")
        if self.final_level not in FINAL_LEVELS:
            raise ValueError(f"unknown final_level {self.final_level!r}; choose zero or sigma_min")
        if self.dpm_algorithm not in ("dpmsolver++", "dpmsolver"):
            raise ValueError("dpm_algorithm must be dpmsolver++ or dpmsolver")
        if self.steps < 0 or self.eta < 0 or not 0 <= self.dynamic_threshold < 1 or not 0 <= self.order <= 3:
            raise ValueError("need steps ≥ 0, eta ≥ 0, 0 ≤ dynamic_threshold < 1 and order in 0…3")

    @property
    def resolved_spacing(self) -> str:
        return DEFAULT_SPACING[self.sampler] if self.spacing == "auto" else self.spacing

    @property
    def threshold(self) -> Threshold:
        return Threshold(clip=self.clip_x0, dynamic_percentile=self.dynamic_threshold)

    def network_evaluations(self, num_timesteps: int) -> int:
        """Network calls per image (Heun evaluates twice per step but the last)."""
        steps = self.steps or num_timesteps
        per_step = SAMPLER_TABLE[self.sampler].evaluations
        return per_step * steps - (per_step - 1)  # no correction after the last step


def make_grid(config: SamplerConfig, schedule: NoiseSchedule) -> NoiseGrid:
    """The noise levels a (non-ancestral) sampler visits."""
    steps = config.steps or schedule.num_timesteps
    if config.resolved_spacing == "karras":
        return karras_grid(schedule, steps, config.rho, config.final_level)
    if config.resolved_spacing == "logsnr":
        return logsnr_grid(schedule, steps, config.final_level)
    return discrete_grid(schedule, steps, config.resolved_spacing, config.final_level)


def sample(
    config: SamplerConfig,
    denoise: Denoiser,
    x_T: torch.Tensor,
    schedule: NoiseSchedule,
    prediction_type: str,
    generator: Generators = None,
    callback: StepCallback | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Run the configured sampler from x_T ~ N(0, I); ``generator`` is one generator for the batch or
    one per image (see :mod:`ddpm.samplers.noise`) for the samplers that draw noise."""
    entry, T = SAMPLER_TABLE[config.sampler], schedule.num_timesteps
    if not entry.discrete:
        grid = make_grid(config, schedule)
        return sample_on_grid(config, denoise, x_T, grid, prediction_type, generator, callback, progress)
    steps = config.steps or T
    timesteps = spaced_timesteps(T, steps, config.resolved_spacing) if steps != T else None
    return entry.function(
        denoise,
        x_T,
        schedule,
        timesteps=timesteps,
        prediction_type=prediction_type,
        callback=callback,
        progress=progress,
        **({"generator": generator} if entry.generator else {}),
        **entry.fixed,
        **entry.options(config),
    )


def sample_on_grid(
    config: SamplerConfig,
    denoise: Denoiser,
    x_T: torch.Tensor,
    grid: NoiseGrid,
    prediction_type: str,
    generator: Generators = None,
    callback: StepCallback | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Run a grid-based sampler (everything but ancestral and DDIM) over a given :class:`NoiseGrid`."""
    entry = SAMPLER_TABLE[config.sampler]
    if entry.discrete:
        raise ValueError(f"{config.sampler} runs on training timesteps; use sample()")
    return entry.function(
        denoise,
        x_T,
        grid,
        prediction_type=prediction_type,
        threshold=config.threshold,
        callback=callback,
        progress=progress,
        **({"generator": generator} if entry.generator else {}),
        **entry.fixed,
        **entry.options(config),
    )
