"""The samplers by name: one entry each (function, description, options read from the configuration).

A new sampler is a new function plus one entry here; the CLI's choices, ``ddpm samplers`` and the
docs read their names from this table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ddpm.samplers.ancestral import ddpm_sample
from ddpm.samplers.consistency import consistency_sample
from ddpm.samplers.ddim import ddim_sample
from ddpm.samplers.dpm_solver import dpm_solver_multistep, dpm_solver_singlestep
from ddpm.samplers.karras import euler_ancestral_sample, euler_sample, heun_sample
from ddpm.samplers.unipc import unipc_sample


def _no_options(config) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class SamplerEntry:
    """How to run one named sampler.

    ``function(denoise, x_T, grid_or_schedule, **fixed, **options(config), ...)``: ``discrete``
    samplers take the schedule and training ``timesteps``, the others a :class:`NoiseGrid` and the
    configuration's ``threshold``. ``stochastic`` ones draw fresh noise every step; those with
    ``generator`` take one (or one per image); ``evaluations`` is the number of network calls per step.
    """

    function: Callable[..., torch.Tensor]
    description: str
    fixed: dict[str, Any] = field(default_factory=dict)
    options: Callable[[Any], dict[str, Any]] = _no_options
    discrete: bool = False
    stochastic: bool = False
    generator: bool = False
    default_spacing: str = "trailing"
    evaluations: int = 1


def _multistep(config) -> dict[str, Any]:
    return {"lower_order_final": config.lower_order_final}


def _singlestep(config) -> dict[str, Any]:
    return {"lower_order_final": config.lower_order_final, "algorithm": config.dpm_algorithm}


def _unipc(config) -> dict[str, Any]:
    return {"lower_order_final": config.lower_order_final, "order": config.order or 2}


SAMPLER_TABLE: dict[str, SamplerEntry] = {
    "ancestral": SamplerEntry(
        ddpm_sample,
        "DDPM Algorithm 2, stochastic; fewer steps than T run the respaced chain",
        options=lambda c: {"variance": c.variance, "clip_x0": c.clip_x0},
        discrete=True,
        stochastic=True,
        generator=True,
    ),
    "ddim": SamplerEntry(
        ddim_sample,
        "DDIM (Song et al. 2021); eta = 0 deterministic, eta = 1 ancestral with β̃",
        options=lambda c: {"eta": c.eta, "clip_x0": c.clip_x0},
        discrete=True,
        generator=True,  # stochastic with eta > 0
    ),
    "dpm++2m": SamplerEntry(
        dpm_solver_multistep,
        "DPM-Solver++(2M), multistep, second order (Lu et al. 2022b)",
        fixed={"order": 2, "algorithm": "dpmsolver++"},
        options=_multistep,
        generator=True,
    ),
    "dpm++3m": SamplerEntry(
        dpm_solver_multistep,
        "DPM-Solver++(3M), multistep, third order",
        fixed={"order": 3, "algorithm": "dpmsolver++"},
        options=_multistep,
        generator=True,
    ),
    "sde-dpm++2m": SamplerEntry(
        dpm_solver_multistep,
        "SDE-DPM-Solver++(2M), stochastic multistep, second order",
        fixed={"order": 2, "algorithm": "sde-dpmsolver++"},
        options=_multistep,
        stochastic=True,
        generator=True,
    ),
    "dpm-solver-2": SamplerEntry(
        dpm_solver_singlestep,
        "single-step DPM-Solver-2 (Lu et al. 2022a); --dpm-algorithm picks ε or x0 form",
        fixed={"order": 2},
        options=_singlestep,
        generator=True,
    ),
    "dpm-solver-3": SamplerEntry(
        dpm_solver_singlestep,
        "single-step DPM-Solver-3",
        fixed={"order": 3},
        options=_singlestep,
        generator=True,
    ),
    "unipc-bh1": SamplerEntry(
        unipc_sample,
        "UniPC predictor-corrector, B(h) = h (Zhao et al. 2023)",
        fixed={"variant": "bh1"},
        options=_unipc,
    ),
    "unipc-bh2": SamplerEntry(
        unipc_sample, "UniPC predictor-corrector, B(h) = e^h − 1", fixed={"variant": "bh2"}, options=_unipc
    ),
    "euler": SamplerEntry(
        euler_sample,
        "Euler on the probability-flow ODE over Karras σ's (Karras et al. 2022)",
        default_spacing="karras",
    ),
    "euler-a": SamplerEntry(
        euler_ancestral_sample,
        "Euler-ancestral over Karras σ's (stochastic)",
        options=lambda c: {"eta": c.eta or 1.0},
        stochastic=True,
        generator=True,
        default_spacing="karras",
    ),
    "heun": SamplerEntry(
        heun_sample,
        "Heun's second-order method over Karras σ's (2 evaluations per step)",
        default_spacing="karras",
        evaluations=2,
    ),
    "consistency": SamplerEntry(
        consistency_sample,
        "multistep consistency sampling (Song et al. 2023): x̂_0 at each level, fresh noise between",
        stochastic=True,
        generator=True,
    ),
}
