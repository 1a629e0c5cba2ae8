"""Choosing a sampler by name: its configuration and the single entry point ``sample``."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch

from ddpm.process import VARIANCE_TYPES
from ddpm.samplers.ancestral import ddpm_sample
from ddpm.samplers.common import Denoiser, StepCallback, Threshold
from ddpm.samplers.ddim import ddim_sample
from ddpm.samplers.dpm_solver import dpm_solver_multistep, dpm_solver_singlestep
from ddpm.samplers.grid import FINAL_LEVELS, NoiseGrid, discrete_grid, karras_grid, logsnr_grid
from ddpm.samplers.karras import euler_ancestral_sample, euler_sample, heun_sample
from ddpm.samplers.spacing import SPACINGS, spaced_timesteps
from ddpm.samplers.unipc import unipc_sample
from ddpm.schedules import NoiseSchedule
from ddpm.validation import InvalidValue, require_choice, require_int, require_number

SAMPLERS = {
    "ancestral": "DDPM Algorithm 2, stochastic; fewer steps than T run the respaced chain",
    "ddim": "DDIM (Song et al. 2021); eta = 0 deterministic, eta = 1 ancestral with β̃",
    "dpm++2m": "DPM-Solver++(2M), multistep, second order (Lu et al. 2022b)",
    "dpm++3m": "DPM-Solver++(3M), multistep, third order",
    "sde-dpm++2m": "SDE-DPM-Solver++(2M), stochastic multistep, second order",
    "dpm-solver-2": "single-step DPM-Solver-2 (Lu et al. 2022a); --dpm-algorithm picks ε or x0 form",
    "dpm-solver-3": "single-step DPM-Solver-3",
    "unipc-bh1": "UniPC predictor-corrector, B(h) = h (Zhao et al. 2023)",
    "unipc-bh2": "UniPC predictor-corrector, B(h) = e^h − 1",
    "euler": "Euler on the probability-flow ODE over Karras σ's (Karras et al. 2022)",
    "euler-a": "Euler-ancestral over Karras σ's (stochastic)",
    "heun": "Heun's second-order method over Karras σ's (2 evaluations per step)",
}
DISCRETE_ONLY = ("ancestral", "ddim")
STOCHASTIC = ("ancestral", "sde-dpm++2m", "euler-a")
CONTINUOUS_SPACINGS = ("karras", "logsnr")
DEFAULT_SPACING = {"euler": "karras", "euler-a": "karras", "heun": "karras"}


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
        return DEFAULT_SPACING.get(self.sampler, "trailing") if self.spacing == "auto" else self.spacing

    @property
    def threshold(self) -> Threshold:
        return Threshold(clip=self.clip_x0, dynamic_percentile=self.dynamic_threshold)

    def network_evaluations(self, num_timesteps: int) -> int:
        """Network calls per image (Heun evaluates twice per step but the last)."""
        steps = self.steps or num_timesteps
        return 2 * steps - 1 if self.sampler == "heun" else steps


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
    generator: torch.Generator | None = None,
    callback: StepCallback | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Run the configured sampler from x_T ~ N(0, I)."""
    name, T = config.sampler, schedule.num_timesteps
    steps = config.steps or T
    common = dict(prediction_type=prediction_type, callback=callback, progress=progress)
    if name in DISCRETE_ONLY:
        timesteps = spaced_timesteps(T, steps, config.resolved_spacing) if steps != T else torch.arange(T)
        if name == "ancestral":
            return ddpm_sample(
                denoise,
                x_T,
                schedule,
                variance=config.variance,
                timesteps=None if steps == T else timesteps,
                generator=generator,
                clip_x0=config.clip_x0,
                **common,
            )
        return ddim_sample(
            denoise,
            x_T,
            schedule,
            timesteps,
            eta=config.eta,
            generator=generator,
            clip_x0=config.clip_x0,
            **common,
        )
    return sample_on_grid(
        config, denoise, x_T, make_grid(config, schedule), prediction_type, generator, callback, progress
    )


def sample_on_grid(
    config: SamplerConfig,
    denoise: Denoiser,
    x_T: torch.Tensor,
    grid: NoiseGrid,
    prediction_type: str,
    generator: torch.Generator | None = None,
    callback: StepCallback | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Run a grid-based sampler (everything but ancestral and DDIM) over a given :class:`NoiseGrid`."""
    name = config.sampler
    if name in DISCRETE_ONLY:
        raise ValueError(f"{name} runs on training timesteps; use sample()")
    common = dict(
        prediction_type=prediction_type, callback=callback, progress=progress, threshold=config.threshold
    )
    if name in ("dpm++2m", "dpm++3m", "sde-dpm++2m"):
        algorithm = "sde-dpmsolver++" if name.startswith("sde") else "dpmsolver++"
        return dpm_solver_multistep(
            denoise,
            x_T,
            grid,
            order=3 if name == "dpm++3m" else 2,
            algorithm=algorithm,
            lower_order_final=config.lower_order_final,
            generator=generator,
            **common,
        )
    if name.startswith("dpm-solver"):
        return dpm_solver_singlestep(
            denoise,
            x_T,
            grid,
            order=int(name[-1]),
            algorithm=config.dpm_algorithm,
            lower_order_final=config.lower_order_final,
            generator=generator,
            **common,
        )
    if name.startswith("unipc"):
        return unipc_sample(
            denoise,
            x_T,
            grid,
            order=config.order or 2,
            variant=name.split("-")[1],
            lower_order_final=config.lower_order_final,
            **common,
        )
    if name == "euler":
        return euler_sample(denoise, x_T, grid, **common)
    if name == "euler-a":
        return euler_ancestral_sample(
            denoise, x_T, grid, eta=config.eta or 1.0, generator=generator, **common
        )
    return heun_sample(denoise, x_T, grid, **common)
