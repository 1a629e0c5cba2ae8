"""Choosing a sampler by name: its configuration and the single entry point ``sample``."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch

from ddpm.process import VARIANCE_TYPES, eps_denoiser_from_mean
from ddpm.samplers.common import Denoiser, StepCallback, Threshold
from ddpm.samplers.grid import FINAL_LEVELS, NoiseGrid, discrete_grid, karras_grid, logsnr_grid
from ddpm.samplers.noise import Generators
from ddpm.samplers.spacing import SPACINGS, spaced_timesteps
from ddpm.samplers.table import SAMPLER_TABLE
from ddpm.schedules import NoiseSchedule
from ddpm.validation import InvalidValue, require_choice, require_int, require_number

SAMPLERS = {name: entry.description for name, entry in SAMPLER_TABLE.items()}
DISCRETE_ONLY = tuple(name for name, entry in SAMPLER_TABLE.items() if entry.discrete)
STOCHASTIC = tuple(name for name, entry in SAMPLER_TABLE.items() if entry.stochastic)
CONTINUOUS_SPACINGS = ("karras", "logsnr")
DEFAULT_SPACING = {name: entry.default_spacing for name, entry in SAMPLER_TABLE.items()}


@dataclass
class SamplerConfig:
    """How to draw samples: which sampler, how many steps, on which grid, and its options.

    Each field's metadata gives its help text and, for names, its ``choices``; ``ddpm sample`` and
    ``ddpm eval`` make their sampler flags from them (``flag`` renames one, e.g. ``--clip``).
    """

    sampler: str = field(
        default="ancestral",
        metadata={"help": "sampler, see 'ddpm samplers'", "choices": tuple(SAMPLERS)},
    )
    steps: int = field(default=0, metadata={"help": "sampling steps (network evaluations); 0 = all T"})
    spacing: str = field(
        default="auto",
        metadata={
            "help": "timesteps for steps < T: karras (EDM σ's) or logsnr (uniform λ) for ODE solvers only",
            "choices": ("auto", *SPACINGS, *CONTINUOUS_SPACINGS),
        },
    )
    eta: float = field(
        default=0.0, metadata={"help": "DDIM / Euler-ancestral stochasticity η (Euler-ancestral: 0 means 1)"}
    )
    variance: str = field(
        default="beta", metadata={"help": "ancestral σ_t²", "choices": tuple(VARIANCE_TYPES)}
    )
    clip_x0: bool = field(
        default=True, metadata={"help": "clamp the predicted x_0 to [-1, 1]", "flag": "clip"}
    )
    dynamic_threshold: float = field(
        default=0.0,
        metadata={"help": "Imagen dynamic thresholding percentile of |x_0| (e.g. 0.995); 0 = off"},
    )
    order: int = field(default=0, metadata={"help": "UniPC order 1-3; 0 = the sampler's default (2)"})
    dpm_algorithm: str = field(
        default="dpmsolver++",
        metadata={
            "help": "single-step DPM-Solver form: dpmsolver++ (x0) or dpmsolver (ε)",
            "choices": ("dpmsolver++", "dpmsolver"),
        },
    )
    final_level: str = field(
        default="zero",
        metadata={"help": "where ODE/multistep samplers end", "choices": tuple(FINAL_LEVELS)},
    )
    lower_order_final: bool = field(
        default=True, metadata={"help": "lower solver orders on the last steps (stabler at < 15 steps)"}
    )
    rho: float = field(default=7.0, metadata={"help": "ρ of Karras σ's"})
    guidance: float = field(
        default=1.0,
        metadata={"help": "classifier-free guidance scale: 0 unconditional, 1 conditional, > 1 stronger"},
    )

    def __post_init__(self) -> None:
        for f in fields(self):
            if "choices" in f.metadata:
                require_choice(f.name, getattr(self, f.name), f.metadata["choices"])
        if self.spacing in CONTINUOUS_SPACINGS and self.sampler in DISCRETE_ONLY:
            raise InvalidValue(
                "spacing",
                f"must be linspace, leading or trailing for {self.sampler} "
                "(it visits training timesteps only)",
                self.spacing,
            )
        require_int("steps", self.steps, 0)
        require_int("order", self.order, 0, 3)
        require_number("eta", self.eta, 0)
        require_number("dynamic_threshold", self.dynamic_threshold, 0, 1, high_open=True)
        require_number("rho", self.rho, 0, low_open=True)
        require_number("guidance", self.guidance, 0)

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
    one per image (see :mod:`ddpm.samplers.noise`) for the samplers that draw noise. A
    mean-predicting model (``mu``) is run as the ε model it implies on ``schedule``, its training chain."""
    entry, T = SAMPLER_TABLE[config.sampler], schedule.num_timesteps
    if prediction_type == "mu":
        denoise, prediction_type = eps_denoiser_from_mean(denoise, schedule), "eps"
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
    if prediction_type == "mu":
        raise ValueError("a mean-predicting model needs its training schedule; use sample()")
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
