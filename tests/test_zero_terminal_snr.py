"""Samplers on zero-terminal-SNR schedules, whose first trailing level has σ = ∞ (λ = −∞).

diffusers clamps ᾱ_T = 0 to 2⁻²⁴ (σ_max ≈ 4096) where ours keeps σ = ∞ and steps out of it in closed
form; the two agree to about 1e-3, and on diffusers' own (clamped) grid ours matches it as usual.
"""

import pytest
import torch
from diffusers import (
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    UniPCMultistepScheduler,
)

from ddpm.samplers import (
    SAMPLER_TABLE,
    SAMPLERS,
    NoiseGrid,
    SamplerConfig,
    discrete_grid,
    sample,
    sample_on_grid,
)
from ddpm.schedules import ScheduleConfig, make_schedule

from .sampler_oracle import EULER_RTOL, THEIR_PREDICTION, gaussian_model, noise, run_diffusers, their_grid

T = 1000
CLAMPED_SIGMA = (1 - 2**-24) ** 0.5 / 2**-12  # diffusers' σ_max for ᾱ_T = 2⁻²⁴


def ztsnr():
    return make_schedule(ScheduleConfig(schedule="linear", num_timesteps=T, zero_terminal_snr=True))


def clamped(grid: NoiseGrid) -> NoiseGrid:
    """The same grid with diffusers' first level σ_max ≈ 4096 in place of ∞."""
    sigmas = grid.sigmas.clone()
    sigmas[0] = CLAMPED_SIGMA
    return NoiseGrid(timesteps=grid.timesteps, sigmas=sigmas)


VARIANTS = [(name, 0) for name in SAMPLERS if not name.startswith("unipc")] + [
    (name, order) for name in ("unipc-bh1", "unipc-bh2") for order in (1, 2, 3)
]


@pytest.mark.parametrize("name, order", VARIANTS)
@pytest.mark.parametrize("prediction_type", ["v", "x0"])
@pytest.mark.parametrize("steps", [7, 10])
def test_every_sampler_is_finite_from_sigma_infinity(name, order, prediction_type, steps):
    schedule = ztsnr()
    config = SamplerConfig(sampler=name, steps=steps, order=order, spacing="trailing", eta=0.5)
    denoise = gaussian_model(schedule, prediction_type)
    ours = sample(
        config, denoise, noise(), schedule, prediction_type, generator=torch.Generator().manual_seed(1)
    )
    assert torch.isfinite(ours).all()
    if not SAMPLER_TABLE[name].discrete:  # close to the same sampler from diffusers' clamped σ_max
        grid = discrete_grid(schedule, steps)
        assert torch.isinf(grid.sigmas[0])
        near = sample_on_grid(
            config, denoise, noise(), clamped(grid), prediction_type, torch.Generator().manual_seed(1)
        )
        assert (ours - near).abs().max() < 0.05


def test_single_step_solvers_step_out_of_sigma_infinity_at_first_order():
    """From σ = ∞ x̂_0 is all the solver knows: the first step is DDIM's, x_1 = α_1 x̂_0 + σ_1 ε̂."""
    schedule = ztsnr()
    denoise = gaussian_model(schedule, "v")
    grid = discrete_grid(schedule, 1, final="sigma_min")  # one step: σ = ∞ → σ_min
    for name in ("dpm-solver-2", "dpm-solver-3", "unipc-bh1", "euler", "heun"):
        config = SamplerConfig(sampler=name, order=3, spacing="trailing", clip_x0=False)
        out = sample_on_grid(config, denoise, noise(), grid, "v")
        x0 = -denoise(noise(), torch.full((2,), 999.0))  # at α = 0, v = −x_0 and ε = x
        expected = grid.alphas[1] * x0 + grid.vp_sigmas[1] * noise()
        torch.testing.assert_close(out, expected.to(out.dtype), atol=1e-6, rtol=0, msg=name)


def _diffusers_ztsnr(kind, prediction_type, steps, **kwargs):
    common = dict(
        num_train_timesteps=T,
        prediction_type=THEIR_PREDICTION[prediction_type],
        timestep_spacing="trailing",
        rescale_betas_zero_snr=True,
    )
    scheduler = kind(**common, **kwargs)
    scheduler.set_timesteps(steps)
    return scheduler


SOLVERS = [
    ("dpm++2m", DPMSolverMultistepScheduler, dict(solver_order=2)),
    ("dpm++3m", DPMSolverMultistepScheduler, dict(solver_order=3)),
    ("sde-dpm++2m", DPMSolverMultistepScheduler, dict(solver_order=2, algorithm_type="sde-dpmsolver++")),
    ("unipc-bh2", UniPCMultistepScheduler, dict(solver_order=2, solver_type="bh2")),
    ("unipc-bh2", UniPCMultistepScheduler, dict(solver_order=3, solver_type="bh2")),
    # diffusers' bh1 is NaN at σ = 0 (see test_unipc); compare on grids ending at σ_min
    (
        "unipc-bh1",
        UniPCMultistepScheduler,
        dict(solver_order=3, solver_type="bh1", final_sigmas_type="sigma_min"),
    ),
]


@pytest.mark.parametrize("name, kind, kwargs", SOLVERS)
@pytest.mark.parametrize("prediction_type", ["v", "x0"])
def test_solvers_match_diffusers_on_zero_terminal_snr(name, kind, kwargs, prediction_type):
    schedule, steps = ztsnr(), 10
    ref = _diffusers_ztsnr(kind, prediction_type, steps, **kwargs)
    theirs_grid = their_grid(ref)
    assert float(theirs_grid.sigmas[0]) == pytest.approx(CLAMPED_SIGMA, rel=1e-6)
    final = kwargs.get("final_sigmas_type", "zero")
    ours_grid = discrete_grid(schedule, steps, final=final)
    torch.testing.assert_close(ours_grid.sigmas[1:], theirs_grid.sigmas[1:], rtol=1e-4, atol=0)
    config = SamplerConfig(sampler=name, order=kwargs["solver_order"], clip_x0=False)
    denoise = gaussian_model(schedule, prediction_type)
    g = torch.Generator().manual_seed(7)
    noises = [torch.randn(noise().shape, generator=g, dtype=torch.float64) for _ in range(steps)]
    theirs = run_diffusers(ref, denoise, noise(), noises if name.startswith("sde") else None)

    def ours(grid):
        return sample_on_grid(
            config, denoise, noise(), grid, prediction_type, torch.Generator().manual_seed(7)
        )

    assert torch.allclose(ours(theirs_grid), theirs, atol=1e-5, rtol=0)  # the same clamped grid
    assert torch.isinf(ours_grid.sigmas[0])
    assert torch.allclose(ours(ours_grid), theirs, atol=1e-3, rtol=0)  # σ = ∞ against σ ≈ 4096


@pytest.mark.parametrize("prediction_type", ["v", "x0"])
def test_euler_matches_diffusers_on_zero_terminal_snr(prediction_type):
    schedule, steps = ztsnr(), 10
    denoise = gaussian_model(schedule, prediction_type)
    kinds = [("euler", EulerDiscreteScheduler)]
    if prediction_type == "v":  # diffusers' Euler-ancestral has no x0-prediction
        kinds.append(("euler-a", EulerAncestralDiscreteScheduler))
    for name, kind in kinds:
        ref = _diffusers_ztsnr(kind, prediction_type, steps)
        x_ve = noise() * ref.init_noise_sigma  # σ_max · z
        theirs = run_diffusers(
            ref, denoise, x_ve, generator=torch.Generator().manual_seed(3), scale_input=True
        )
        config = SamplerConfig(sampler=name, spacing="trailing", clip_x0=False)
        start = x_ve / (1 + ref.sigmas[0].double() ** 2).sqrt()
        on_theirs = sample_on_grid(
            config, denoise, start, their_grid(ref), prediction_type, torch.Generator().manual_seed(3)
        )
        atol = max(1e-5, EULER_RTOL * float(ref.sigmas[0]))
        assert torch.allclose(on_theirs, theirs, atol=atol, rtol=0), name
        grid = discrete_grid(schedule, steps)
        on_ours = sample_on_grid(
            config, denoise, noise(), grid, prediction_type, torch.Generator().manual_seed(3)
        )
        assert torch.allclose(on_ours, theirs, atol=1e-3, rtol=0), name
