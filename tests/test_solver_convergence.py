"""Samplers without an oracle: for Gaussian data the probability-flow ODE has a closed-form solution,
so deterministic solvers must converge to it at their order, and stochastic ones must produce the
data's mean and variance."""

import math

import numpy as np
import pytest
import torch

from ddpm.samplers import (
    NoiseGrid,
    SamplerConfig,
    ddim_invert,
    ddim_sample,
    sample,
    sample_on_grid,
    spaced_timesteps,
)
from ddpm.samplers.grid import sigma_to_timestep
from ddpm.schedules import ScheduleConfig, make_schedule

MU, STD = 0.3, 0.5
SCHEDULE = make_schedule(ScheduleConfig(schedule="linear", num_timesteps=1000))


def exact_denoiser(schedule, prediction_type="eps"):
    """E[x_0 | x_t] for x_0 ~ N(MU, STD²), at fractional t by interpolating log σ (as the grids do)."""
    log_sigmas = schedule.sigmas.log()

    def denoise(x, t):
        t = t.to(torch.float64)
        lo = t.floor().long().clamp(0, len(log_sigmas) - 2)
        log_sigma = log_sigmas[lo] + (t - lo) * (log_sigmas[lo + 1] - log_sigmas[lo])
        ab = (1 / (1 + torch.exp(2 * log_sigma))).to(x.dtype).reshape(-1, *[1] * (x.ndim - 1))
        x0 = MU + ab.sqrt() * STD**2 / (ab * STD**2 + 1 - ab) * (x - ab.sqrt() * MU)
        eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()
        return {"eps": eps, "x0": x0, "v": ab.sqrt() * eps - (1 - ab).sqrt() * x0}[prediction_type]

    return denoise


def ode_solution(x_T, sigma_from, sigma_to):
    """x_ve(σ) = μ + (x_ve(σ₀) − μ) √((s² + σ²)/(s² + σ₀²)), returned in VP scale α(σ) x_ve."""
    x_ve = x_T * math.sqrt(1 + sigma_from**2)
    end = MU + (x_ve - MU) * math.sqrt((STD**2 + sigma_to**2) / (STD**2 + sigma_from**2))
    return end / math.sqrt(1 + sigma_to**2)


def solve(name, steps, x_T, **options):
    """Run a solver on a grid uniform in λ down to σ_min, timesteps left fractional so the exact
    denoiser sees exactly the grid's noise levels."""
    config = SamplerConfig(sampler=name, steps=steps, clip_x0=False, lower_order_final=False, **options)
    lam = torch.linspace(-float(SCHEDULE.sigmas[-1].log()), -float(SCHEDULE.sigmas[0].log()), steps + 1)
    sigmas = torch.exp(-lam.double())
    grid = NoiseGrid(timesteps=sigma_to_timestep(sigmas[:-1], SCHEDULE), sigmas=sigmas)
    return sample_on_grid(config, exact_denoiser(SCHEDULE), x_T, grid, "eps"), grid


ORDERS = {
    "euler": 1,
    "heun": 2,
    "dpm++2m": 2,
    # 3M warms up with one first-order step whose O(h²) local error bounds the global order by 2
    # (UniPC's corrector lifts its first step to second order, so it keeps 3)
    "dpm++3m": 2,
    "dpm-solver-2": 2,
    "dpm-solver-3": 3,
    "unipc-bh1": 3,
    "unipc-bh2": 3,
}


@pytest.mark.parametrize("name", list(ORDERS))
def test_deterministic_solvers_converge_at_their_order(name):
    x_T = torch.randn(256, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    errors = []
    ks = [12, 24, 48, 96]
    for k in ks:
        out, grid = solve(name, k, x_T)
        exact = ode_solution(x_T, float(grid.sigmas[0]), float(grid.sigmas[-1]))
        errors.append((out - exact).abs().max().item())
    slope = -np.polyfit(np.log(ks[1:]), np.log(errors[1:]), 1)[0]
    assert errors[-1] < {1: 0.1, 2: 0.01, 3: 1e-3}[ORDERS[name]]
    assert slope > ORDERS[name] - 0.4, (errors, slope)


def test_third_order_multistep_beats_second_order():
    x_T = torch.randn(256, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for k in (24, 48, 96):
        errs = {}
        for name in ("dpm++2m", "dpm++3m"):
            out, grid = solve(name, k, x_T)
            errs[name] = (out - ode_solution(x_T, float(grid.sigmas[0]), float(grid.sigmas[-1]))).abs().max()
        assert errs["dpm++3m"] < errs["dpm++2m"]


@pytest.mark.parametrize(
    "name, steps, options",
    [
        # first-order and stochastic samplers need more steps to reach the moments than
        # higher-order ODE solvers; each at a step count where its bias is below the tolerance
        ("ancestral", 1000, {}),
        ("ancestral", 300, {"variance": "beta_tilde"}),
        ("ddim", 300, {"eta": 1.0}),
        ("ddim", 300, {}),
        ("sde-dpm++2m", 100, {}),
        ("euler-a", 300, {}),
        ("euler", 300, {}),
        ("dpm++2m", 30, {}),
        ("dpm++3m", 30, {}),
        ("dpm-solver-3", 30, {}),
        ("unipc-bh1", 30, {}),
        ("unipc-bh2", 30, {}),
        ("heun", 100, {}),
    ],
)
def test_samples_have_the_data_mean_and_variance(name, steps, options):
    """Every sampler, with the exact denoiser, draws N(MU, STD²) data (moments within 5 s.e.)."""
    n = 20_000
    config = SamplerConfig(sampler=name, steps=steps, clip_x0=False, **options)
    g = torch.Generator().manual_seed(1)
    x_T = torch.randn(n, 1, 1, 1, generator=g, dtype=torch.float64)
    x = sample(config, exact_denoiser(SCHEDULE), x_T, SCHEDULE, "eps", generator=g).flatten()
    se_mean, se_var = STD / math.sqrt(n), STD**2 * math.sqrt(2 / n)
    assert abs(x.mean().item() - MU) < 5 * se_mean + 0.01
    assert abs(x.var().item() - STD**2) < 5 * se_var + 0.01


def test_ddim_inversion_reconstructs_and_improves_with_steps():
    x0 = MU + STD * torch.randn(512, 1, 1, 1, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    denoise = exact_denoiser(SCHEDULE)
    errors = []
    for k in (10, 50, 250):
        ts = spaced_timesteps(1000, k, "linspace")
        x_T = ddim_invert(denoise, x0, SCHEDULE, ts)
        back = ddim_sample(denoise, x_T, SCHEDULE, ts, eta=0.0, clip_x0=False)
        errors.append((back - x0).abs().mean().item())
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.01
    assert abs(x_T.std().item() - 1) < 0.05  # the code of N(MU, STD²) data is ≈ N(0, I)


def test_solvers_skip_zero_length_steps():
    """A grid that repeats its last level (as Karras σ's with final σ_min do) must not produce NaN."""
    from ddpm.samplers.grid import karras_grid

    grid = karras_grid(SCHEDULE, 10, final="sigma_min")
    x_T = torch.randn(64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for name in ("dpm++2m", "dpm++3m", "dpm-solver-2", "unipc-bh2", "euler", "heun"):
        config = SamplerConfig(sampler=name, steps=10, clip_x0=False)
        out = sample_on_grid(config, exact_denoiser(SCHEDULE), x_T, grid, "eps")
        assert torch.isfinite(out).all(), name
