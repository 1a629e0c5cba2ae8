"""Convergence order of the deterministic samplers, without any oracle.

For Gaussian data N(μ, s²) the probability-flow ODE has the closed-form solution
x(σ) = μ + (x(σ₀) − μ) √((s² + σ²)/(s² + σ₀²)); with the exact denoiser, a solver's error at
the end of a log-SNR-uniform grid must fall as K^(−order). Writes the errors, the fitted slopes and
a log-log plot to results/solver_convergence.{json,md,png}.

    python benchmarks/solver_convergence.py
"""

from __future__ import annotations

import math

import numpy as np
import torch
from common import RESULTS, write_results

from ddpm.samplers import NoiseGrid, SamplerConfig, sample_on_grid
from ddpm.samplers.grid import sigma_to_timestep
from ddpm.schedules import ScheduleConfig, make_schedule

MU, STD = 0.3, 0.5
SOLVERS = {"euler": 1, "heun": 2, "dpm++2m": 2, "dpm++3m": 3, "dpm-solver-2": 2, "dpm-solver-3": 3,
           "unipc-bh1": 3, "unipc-bh2": 3}  # fmt: skip
STEPS = [6, 12, 24, 48, 96, 192]


def exact_eps(schedule):
    log_sigmas = schedule.sigmas.log()

    def denoise(x, t):
        lo = t.floor().long().clamp(0, len(log_sigmas) - 2)
        log_sigma = log_sigmas[lo] + (t - lo) * (log_sigmas[lo + 1] - log_sigmas[lo])
        ab = (1 / (1 + torch.exp(2 * log_sigma))).to(x.dtype)[:, None]
        x0 = MU + ab.sqrt() * STD**2 / (ab * STD**2 + 1 - ab) * (x - ab.sqrt() * MU)
        return (x - ab.sqrt() * x0) / (1 - ab).sqrt()

    return denoise


def main() -> None:
    schedule = make_schedule(ScheduleConfig(schedule="linear", num_timesteps=1000))
    x_T = torch.randn(1024, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    rows = []
    for name, order in SOLVERS.items():
        errors = []
        for k in STEPS:
            lam = torch.linspace(-float(schedule.sigmas[-1].log()), -float(schedule.sigmas[0].log()), k + 1)
            sigmas = torch.exp(-lam.double())
            grid = NoiseGrid(timesteps=sigma_to_timestep(sigmas[:-1], schedule), sigmas=sigmas)
            config = SamplerConfig(sampler=name, steps=k, clip_x0=False, lower_order_final=False)
            out = sample_on_grid(config, exact_eps(schedule), x_T, grid, "eps")
            s0, s1 = float(sigmas[0]), float(sigmas[-1])
            x_ve = MU + (x_T * math.sqrt(1 + s0**2) - MU) * math.sqrt((STD**2 + s1**2) / (STD**2 + s0**2))
            errors.append((out - x_ve / math.sqrt(1 + s1**2)).abs().max().item())
        slope = -np.polyfit(np.log(STEPS[2:]), np.log(errors[2:]), 1)[0]
        rows.append({"solver": name, "nominal_order": order, "fitted_order": slope, "errors": errors})

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    for r in rows:
        ax.plot(STEPS, r["errors"], marker="o", label=f"{r['solver']} (slope {r['fitted_order']:.2f})")
    ax.set(xscale="log", yscale="log", xlabel="steps", ylabel="max |error| vs exact ODE solution")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "solver_convergence.png", dpi=110)

    lines = [
        "Error against the exact ODE solution for N(0.3, 0.5²) data (linear schedule, log-SNR grid",
        "to σ_min); order fitted on 24–192 steps. DPM-Solver++(3M) starts with a first-order step,",
        "whose O(h²) local error caps its global order at 2.",
        "",
        "| solver | nominal order | fitted order | error @ 12 steps | error @ 48 steps |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['solver']} | {r['nominal_order']} | {r['fitted_order']:.2f} | {r['errors'][1]:.2e} | "
            f"{r['errors'][3]:.2e} |"
        )
    write_results("solver_convergence", {"steps": STEPS, "rows": rows}, lines)


if __name__ == "__main__":
    main()
