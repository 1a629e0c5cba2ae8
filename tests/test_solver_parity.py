"""Fast samplers against diffusers' schedulers: same model function, same noise, same grid in,
same tensor out (diffusers computes these schedulers in float32, hence 1e-5)."""

import numpy as np
import pytest
import torch
from diffusers import (
    DPMSolverMultistepScheduler,
    DPMSolverSinglestepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    UniPCMultistepScheduler,
)

from ddpm.samplers import (
    NoiseGrid,
    discrete_grid,
    dpm_solver_multistep,
    dpm_solver_singlestep,
    euler_ancestral_sample,
    euler_sample,
    heun_sample,
    karras_grid,
    unipc_sample,
)
from ddpm.schedules import ScheduleConfig, make_schedule

from .sampler_oracle import (
    EULER_RTOL,
    SHAPE,
    THEIR_PREDICTION,
    THEIR_SCHEDULE,
    gaussian_model,
    noise,
    parity_tolerance,
    run_diffusers,
    their_grid,
)

T = 1000


@pytest.mark.parametrize(
    "schedule_name, steps, karras",
    [
        ("linear", 8, False),
        ("linear", 20, False),
        ("linear", 12, True),
        ("cosine", 8, False),
        ("cosine", 20, False),
    ],
)
@pytest.mark.parametrize("prediction_type", ["eps", "x0", "v"])
@pytest.mark.parametrize("order, algorithm", [(2, "dpmsolver++"), (3, "dpmsolver++"), (2, "sde-dpmsolver++")])
def test_dpm_solver_multistep(schedule_name, prediction_type, order, algorithm, steps, karras):
    schedule = make_schedule(ScheduleConfig(schedule=schedule_name, num_timesteps=T))
    ref = DPMSolverMultistepScheduler(
        num_train_timesteps=T,
        beta_schedule=THEIR_SCHEDULE[schedule_name],
        solver_order=order,
        algorithm_type=algorithm,
        prediction_type=THEIR_PREDICTION[prediction_type],
        timestep_spacing="trailing",
        use_karras_sigmas=karras,
    )
    ref.set_timesteps(steps)
    grid = their_grid(ref)
    g = torch.Generator().manual_seed(7)
    noises = [torch.randn(SHAPE, generator=g, dtype=torch.float64) for _ in range(steps)]
    denoise = gaussian_model(schedule, prediction_type)
    ours = dpm_solver_multistep(
        denoise,
        noise(),
        grid,
        order=order,
        algorithm=algorithm,
        prediction_type=prediction_type,
        generator=torch.Generator().manual_seed(7),
    )
    theirs = run_diffusers(ref, denoise, noise(), noises if algorithm.startswith("sde") else None)
    assert torch.allclose(ours, theirs, atol=parity_tolerance(schedule_name, prediction_type), rtol=0)


@pytest.mark.parametrize("solver_type", ["midpoint", "heun"])
@pytest.mark.parametrize("algorithm, final", [("dpmsolver++", "zero"), ("dpmsolver", "sigma_min")])
def test_dpm_solver_multistep_variants(solver_type, algorithm, final):
    schedule = make_schedule(ScheduleConfig(schedule="linear", num_timesteps=T))
    ref = DPMSolverMultistepScheduler(
        num_train_timesteps=T,
        solver_order=2,
        algorithm_type=algorithm,
        solver_type=solver_type,
        timestep_spacing="trailing",
        final_sigmas_type=final,
    )
    ref.set_timesteps(10)
    denoise = gaussian_model(schedule, "eps")
    ours = dpm_solver_multistep(
        denoise, noise(), their_grid(ref), algorithm=algorithm, solver_type=solver_type
    )
    assert torch.allclose(ours, run_diffusers(ref, denoise, noise()), atol=1e-5, rtol=0)


@pytest.mark.parametrize("order", [2, 3])
@pytest.mark.parametrize(
    "algorithm, final, schedule_name",
    # the ε form integrates α_t/α_s from ᾱ_T ≈ 4e-9 on cosine, which float32 cannot follow; use linear
    [("dpmsolver++", "zero", "cosine"), ("dpmsolver", "sigma_min", "linear")],
)
@pytest.mark.parametrize("solver_type", ["midpoint", "heun"])
@pytest.mark.parametrize("steps", [9, 10, 11])
def test_dpm_solver_singlestep(order, algorithm, final, schedule_name, solver_type, steps):
    schedule = make_schedule(ScheduleConfig(schedule=schedule_name, num_timesteps=T))
    ref = DPMSolverSinglestepScheduler(
        num_train_timesteps=T,
        beta_schedule=THEIR_SCHEDULE[schedule_name],
        solver_order=order,
        algorithm_type=algorithm,
        solver_type=solver_type,
        final_sigmas_type=final,
        prediction_type="v_prediction",
        lower_order_final=True,
    )
    ref.set_timesteps(steps)
    denoise = gaussian_model(schedule, "v")
    ours = dpm_solver_singlestep(
        denoise,
        noise(),
        their_grid(ref),
        order=order,
        algorithm=algorithm,
        solver_type=solver_type,
        prediction_type="v",
    )
    # the ε form's float32 rounding in diffusers reaches 1.1e-5 at third order
    tol = 1e-5 if algorithm == "dpmsolver++" else 2e-5
    assert torch.allclose(ours, run_diffusers(ref, denoise, noise()), atol=tol, rtol=0)


@pytest.mark.parametrize("variant", ["bh1", "bh2"])
@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("prediction_type", ["eps", "v"])
@pytest.mark.parametrize("steps, karras", [(6, False), (10, False), (16, True)])
def test_unipc(variant, order, prediction_type, steps, karras):
    schedule = make_schedule(ScheduleConfig(schedule="linear", num_timesteps=T))
    # diffusers' bh1 returns NaN when stepping to σ = 0 (B(h) = h = −∞ times a zero correction), so
    # bh1 is compared on grids ending at σ_min; test_unipc_bh1_to_zero covers ours at σ = 0
    final = "sigma_min" if variant == "bh1" else "zero"
    ref = UniPCMultistepScheduler(
        num_train_timesteps=T,
        solver_order=order,
        solver_type=variant,
        final_sigmas_type=final,
        prediction_type=THEIR_PREDICTION[prediction_type],
        timestep_spacing="trailing",
        use_karras_sigmas=karras,
    )
    ref.set_timesteps(steps)
    denoise = gaussian_model(schedule, prediction_type)
    ours = unipc_sample(
        denoise, noise(), their_grid(ref), order=order, variant=variant, prediction_type=prediction_type
    )
    assert torch.allclose(ours, run_diffusers(ref, denoise, noise()), atol=1e-5, rtol=0)


def test_unipc_bh1_to_zero():
    schedule = make_schedule(ScheduleConfig(schedule="linear", num_timesteps=T))
    denoise = gaussian_model(schedule, "eps")
    bh1 = unipc_sample(denoise, noise(), discrete_grid(schedule, 10), variant="bh1")
    bh2 = unipc_sample(denoise, noise(), discrete_grid(schedule, 10), variant="bh2")
    assert torch.isfinite(bh1).all() and (bh1 - bh2).abs().max() < 0.05


def _start_like(scheduler, x_T):
    """Our VP start for the x_ve = init_noise_sigma · z diffusers starts from: with ``linspace`` or
    ``trailing`` spacing that is σ_max · z for Euler and Heun alike (diffusers 0.42), not √(σ_max²+1) · z."""
    return x_T * scheduler.init_noise_sigma / (1 + scheduler.sigmas[0].double() ** 2).sqrt()


@pytest.mark.parametrize("schedule_name, karras", [("linear", True), ("linear", False), ("cosine", True)])
@pytest.mark.parametrize("prediction_type", ["eps", "v"])
def test_euler_and_heun(schedule_name, prediction_type, karras):
    config = ScheduleConfig(schedule=schedule_name, num_timesteps=T)
    schedule = make_schedule(config)
    kwargs = dict(
        num_train_timesteps=T,
        beta_schedule=THEIR_SCHEDULE[schedule_name],
        # Heun's defaults are Stable Diffusion's (8.5e-4, 0.012), Euler's DDPM's: name the model's
        beta_start=config.beta_start,
        beta_end=config.beta_end,
        prediction_type=THEIR_PREDICTION[prediction_type],
        use_karras_sigmas=karras,
        timestep_spacing="trailing",
    )
    denoise = gaussian_model(schedule, prediction_type)
    euler = EulerDiscreteScheduler(**kwargs)
    euler.set_timesteps(12)
    assert euler.init_noise_sigma == euler.sigmas.max()
    theirs = run_diffusers(euler, denoise, noise() * euler.init_noise_sigma, scale_input=True)
    ours = euler_sample(
        denoise, _start_like(euler, noise()), their_grid(euler), prediction_type=prediction_type
    )
    scale = float(euler.sigmas[0])
    assert torch.allclose(ours, theirs, atol=max(1e-5, EULER_RTOL * scale), rtol=0)

    heun = HeunDiscreteScheduler(**kwargs)
    heun.set_timesteps(8)
    # the model's schedule, not Heun's default one
    assert torch.allclose(heun.alphas_cumprod.double(), schedule.alpha_bar, rtol=1e-5)
    theirs = run_diffusers(heun, denoise, noise() * heun.init_noise_sigma, scale_input=True)
    # diffusers repeats each inner timestep for Heun's second evaluation; the grid itself is:
    grid = NoiseGrid(
        timesteps=heun.timesteps[::2].double(),
        sigmas=torch.cat([heun.sigmas[:1], heun.sigmas[1::2]]).double(),
    )
    ours = heun_sample(denoise, _start_like(heun, noise()), grid, prediction_type=prediction_type)
    assert torch.allclose(ours, theirs, atol=max(1e-5, EULER_RTOL * scale), rtol=0)


@pytest.mark.parametrize("prediction_type", ["eps", "v"])
def test_euler_ancestral(prediction_type):
    schedule = make_schedule(ScheduleConfig(schedule="linear", num_timesteps=T))
    ref = EulerAncestralDiscreteScheduler(
        num_train_timesteps=T, prediction_type=THEIR_PREDICTION[prediction_type], timestep_spacing="trailing"
    )
    ref.set_timesteps(15)
    denoise = gaussian_model(schedule, prediction_type)
    x_T = noise()
    theirs = run_diffusers(
        ref, denoise, x_T * ref.init_noise_sigma, generator=torch.Generator().manual_seed(3), scale_input=True
    )
    ours = euler_ancestral_sample(
        denoise,
        x_T,
        their_grid(ref),
        prediction_type=prediction_type,
        generator=torch.Generator().manual_seed(3),
    )
    assert torch.allclose(ours, theirs, atol=1e-5, rtol=0)


@pytest.mark.parametrize("schedule_name", ["linear", "cosine"])
@pytest.mark.parametrize("steps", [5, 10, 25, 50])
def test_grids_match_diffusers(schedule_name, steps):
    """Our grids equal diffusers' DPM-Solver grids (float32 there): trailing spacing, and Karras σ's over
    the table's full [σ_min, σ_max] with their timesteps. (diffusers' Euler takes its Karras range from
    the spaced timesteps instead, so its σ_min depends on ``timestep_spacing``; ours does not.)"""
    schedule = make_schedule(ScheduleConfig(schedule=schedule_name, num_timesteps=T))
    kwargs = dict(
        num_train_timesteps=T, beta_schedule=THEIR_SCHEDULE[schedule_name], timestep_spacing="trailing"
    )
    ref = DPMSolverMultistepScheduler(**kwargs)
    ref.set_timesteps(steps)
    ours = discrete_grid(schedule, steps, "trailing")
    assert np.array_equal(ours.timesteps.numpy(), ref.timesteps.numpy())
    rtol = 1e-3 if schedule_name == "cosine" else 1e-4
    assert torch.allclose(ours.sigmas, ref.sigmas.double(), rtol=rtol)
    ref = DPMSolverMultistepScheduler(**kwargs, use_karras_sigmas=True)
    ref.set_timesteps(steps)
    ours = karras_grid(schedule, steps, round_timesteps=schedule_name != "cosine")  # as diffusers' DPM
    assert torch.allclose(ours.sigmas, ref.sigmas.double(), rtol=rtol)
    # on cosine diffusers keeps fractional timesteps but stores them as int64 (truncated)
    assert torch.allclose(ours.timesteps, ref.timesteps.double(), atol=1 if schedule_name == "cosine" else 0)


def test_karras_on_cosine_repeats_timesteps_in_diffusers_but_not_ours():
    """Karras σ's on cosine crowd near σ_max ≈ 2e4: diffusers rounds several to one timestep (and its
    step lookup then skips levels); our grid keeps every level, at fractional timesteps."""
    ref = DPMSolverMultistepScheduler(
        num_train_timesteps=T, beta_schedule="squaredcos_cap_v2", use_karras_sigmas=True
    )
    ref.set_timesteps(12)
    assert len(torch.unique(ref.timesteps)) < len(ref.timesteps)
    schedule = make_schedule(ScheduleConfig(schedule="cosine", num_timesteps=T))
    grid = karras_grid(schedule, 12)
    assert len(torch.unique(grid.timesteps)) == 12
    out = dpm_solver_multistep(gaussian_model(schedule, "eps"), noise(), grid)
    assert torch.isfinite(out).all()
