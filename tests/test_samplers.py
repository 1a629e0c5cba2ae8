"""Samplers: Algorithm 2 against diffusers' DDPMScheduler loop, DDIM η = 1 against ancestral."""

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler

from ddpm.samplers import (
    SamplerConfig,
    TrajectoryRecorder,
    ddim_sample,
    ddpm_sample,
    sample,
    spaced_timesteps,
)
from ddpm.schedules import ScheduleConfig, make_schedule

SHAPE = (3, 2, 4, 4)


def toy_model(schedule, prediction_type="eps", mu=0.2, std=0.5):
    """The exact prediction for Gaussian data N(mu, std²) plus a small nonlinear wobble: a stand-in
    for a trained network that keeps samples in a sensible range."""

    def denoise(x, t):
        ab = schedule.alpha_bar[t].to(x.dtype)[:, None, None, None]
        x0 = mu + ab.sqrt() * std**2 / (ab * std**2 + 1 - ab) * (x - ab.sqrt() * mu)
        x0 = x0 + 0.05 * torch.tanh(3 * x)
        eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()
        return {"eps": eps, "x0": x0, "v": ab.sqrt() * eps - (1 - ab).sqrt() * x0}[prediction_type]

    return denoise


def diffusers_loop(scheduler, denoise, x, generator, **step_options):
    for t in scheduler.timesteps:
        out = denoise(x, torch.full((x.shape[0],), int(t)))
        x = scheduler.step(out, t, x, generator=generator, **step_options).prev_sample
    return x


@pytest.mark.parametrize("schedule_name, theirs", [("linear", "linear"), ("cosine", "squaredcos_cap_v2")])
@pytest.mark.parametrize(
    "prediction_type, their_pred", [("eps", "epsilon"), ("x0", "sample"), ("v", "v_prediction")]
)
@pytest.mark.parametrize("variance, their_var", [("beta", "fixed_large"), ("beta_tilde", "fixed_small")])
@pytest.mark.parametrize("clip", [False, True])
def test_full_ancestral_matches_diffusers(
    schedule_name, theirs, prediction_type, their_pred, variance, their_var, clip
):
    T = 200
    schedule = make_schedule(ScheduleConfig(schedule=schedule_name, num_timesteps=T, beta_end=0.1))
    ref = DDPMScheduler(
        num_train_timesteps=T,
        beta_schedule=theirs,
        beta_end=0.1,
        prediction_type=their_pred,
        variance_type=their_var,
        clip_sample=clip,
    )
    ref.betas = schedule.betas.clone()  # compare the sampler, not float32 schedule arithmetic
    ref.alphas = schedule.alphas.clone()
    ref.alphas_cumprod = schedule.alpha_bar.clone()
    ref.set_timesteps(T)
    denoise = toy_model(schedule, prediction_type)
    x_T = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ours = ddpm_sample(
        denoise,
        x_T.clone(),
        schedule,
        generator=torch.Generator().manual_seed(1),
        prediction_type=prediction_type,
        variance=variance,
        clip_x0=clip,
    )
    theirs_x = diffusers_loop(ref, denoise, x_T.clone(), torch.Generator().manual_seed(1))
    assert torch.allclose(ours, theirs_x, atol=1e-10, rtol=0)


@pytest.mark.parametrize("spacing", ["linspace", "leading", "trailing"])
@pytest.mark.parametrize("steps", [10, 37])
def test_respaced_ancestral_matches_diffusers(spacing, steps):
    T = 1000
    schedule = make_schedule(ScheduleConfig(schedule="linear", num_timesteps=T))
    ref = DDPMScheduler(
        num_train_timesteps=T, timestep_spacing=spacing, variance_type="fixed_small", clip_sample=False
    )
    ref.betas, ref.alphas, ref.alphas_cumprod = schedule.betas, schedule.alphas, schedule.alpha_bar
    ref.set_timesteps(steps)
    timesteps = spaced_timesteps(T, steps, spacing)
    assert np.array_equal(timesteps.numpy()[::-1], ref.timesteps.numpy())
    denoise = toy_model(schedule)
    x_T = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ours = ddpm_sample(
        denoise,
        x_T.clone(),
        schedule,
        generator=torch.Generator().manual_seed(5),
        variance="beta_tilde",
        timesteps=timesteps,
    )
    theirs_x = diffusers_loop(ref, denoise, x_T.clone(), torch.Generator().manual_seed(5))
    assert torch.allclose(
        ours, theirs_x, atol=1e-8, rtol=0
    )  # diffusers adds √1e-20 · z at a final step whose σ is 0


@pytest.mark.parametrize("prediction_type", ["eps", "x0", "v"])
def test_ddim_with_eta_one_is_ancestral_with_beta_tilde(prediction_type):
    schedule = make_schedule(ScheduleConfig(schedule="cosine", num_timesteps=1000))
    timesteps = spaced_timesteps(1000, 25, "trailing")
    denoise = toy_model(schedule, prediction_type)
    x_T = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    common = dict(prediction_type=prediction_type, clip_x0=False)
    a = ddim_sample(
        denoise, x_T, schedule, timesteps, eta=1.0, generator=torch.Generator().manual_seed(3), **common
    )
    b = ddpm_sample(
        denoise,
        x_T,
        schedule,
        generator=torch.Generator().manual_seed(3),
        variance="beta_tilde",
        timesteps=timesteps,
        **common,
    )
    assert torch.allclose(a, b, atol=1e-10)


def test_ddim_eta_zero_is_deterministic_and_inverts_a_point_mass():
    """For data = a single point c, the exact ε-predictor is (x_t − √ᾱ c)/√(1−ᾱ); DDIM lands on c."""
    schedule = make_schedule(ScheduleConfig(schedule="linear", num_timesteps=1000))
    c = torch.tensor(0.42, dtype=torch.float64)

    def exact(x, t):
        ab = schedule.alpha_bar[t].to(x.dtype)[:, None, None, None]
        return (x - ab.sqrt() * c) / (1 - ab).sqrt()

    x_T = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = ddim_sample(exact, x_T, schedule, spaced_timesteps(1000, 5, "trailing"), eta=0.0, clip_x0=False)
    assert torch.allclose(out, torch.full(SHAPE, 0.42, dtype=torch.float64), atol=1e-10)


def test_same_seed_same_samples_and_trajectory_is_recorded(linear_schedule):
    config = SamplerConfig(sampler="ancestral", steps=20)
    x_T = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))
    rec = TrajectoryRecorder(every=5)
    a = sample(
        config,
        toy_model(linear_schedule),
        x_T,
        linear_schedule,
        "eps",
        torch.Generator().manual_seed(9),
        callback=rec,
    )
    b = sample(
        config, toy_model(linear_schedule), x_T, linear_schedule, "eps", torch.Generator().manual_seed(9)
    )
    c = sample(
        config, toy_model(linear_schedule), x_T, linear_schedule, "eps", torch.Generator().manual_seed(10)
    )
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert len(rec.xt) == 4 and rec.timesteps == [999, 749, 499, 249]
    assert torch.equal(rec.xt[0], x_T)


def test_spacings_are_increasing_and_in_range():
    for spacing in ("linspace", "leading", "trailing"):
        for k in (1, 7, 50, 1000):
            ts = spaced_timesteps(1000, k, spacing)
            assert len(ts) == k and (ts.diff() > 0).all() and ts.min() >= 0 and ts.max() <= 999
    assert spaced_timesteps(1000, 10, "trailing")[-1] == 999
    with pytest.raises(ValueError):
        spaced_timesteps(1000, 0, "trailing")
    with pytest.raises(ValueError):
        SamplerConfig(sampler="euler-magic")


@pytest.mark.parametrize(
    "schedule_name, zero_snr, prediction_type",
    [
        ("linear", False, "eps"),
        ("linear", False, "x0"),
        ("linear", False, "v"),
        ("cosine", False, "eps"),
        ("linear", True, "v"),
        ("linear", True, "x0"),
    ],
)
@pytest.mark.parametrize("spacing", ["leading", "trailing"])
@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_matches_diffusers(schedule_name, zero_snr, prediction_type, spacing, eta):
    """DDIM against diffusers' DDIMScheduler loop: same model, same noise, same grid, in float64,
    including the zero-terminal-SNR schedule (trailing starts at ᾱ_T = 0, where ε-prediction is
    undefined). diffusers takes t − T // K as the previous timestep, which is the grid's only when
    the grid is evenly spaced: leading always, trailing when K divides T (see the next test)."""
    from diffusers import DDIMScheduler

    T, steps = 1000, 10
    schedule = make_schedule(
        ScheduleConfig(schedule=schedule_name, num_timesteps=T, zero_terminal_snr=zero_snr)
    )
    their_pred = {"eps": "epsilon", "x0": "sample", "v": "v_prediction"}[prediction_type]
    ref = DDIMScheduler(
        num_train_timesteps=T, timestep_spacing=spacing, prediction_type=their_pred, clip_sample=False
    )
    ref.alphas_cumprod = schedule.alpha_bar.clone()
    ref.set_timesteps(steps)
    timesteps = spaced_timesteps(T, steps, spacing)
    assert np.array_equal(timesteps.numpy()[::-1], ref.timesteps.numpy())
    denoise = toy_model(schedule, prediction_type)
    x_T = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ours = ddim_sample(
        denoise,
        x_T.clone(),
        schedule,
        timesteps,
        eta=eta,
        generator=torch.Generator().manual_seed(5),
        prediction_type=prediction_type,
    )
    theirs = diffusers_loop(ref, denoise, x_T.clone(), torch.Generator().manual_seed(5), eta=eta)
    assert torch.isfinite(ours).all()
    assert torch.allclose(ours, theirs, atol=1e-10, rtol=1e-10)


def test_diffusers_ddim_steps_off_an_uneven_grid():
    """The quirk behind the restriction above: on a linspace grid diffusers' DDIM steps from t to
    t − T // K, a timestep that is not on the grid, so its ᾱ_{t−1} differs from DDIM eq. 12's
    (which uses the next timestep of the sub-sequence τ, as ours does)."""
    from diffusers import DDIMScheduler

    ref = DDIMScheduler(num_train_timesteps=1000, timestep_spacing="linspace")
    ref.set_timesteps(12)
    grid = ref.timesteps.tolist()
    implied_previous = [t - 1000 // 12 for t in grid[:-1]]
    assert implied_previous != grid[1:]
    assert grid == spaced_timesteps(1000, 12, "linspace").flip(0).tolist()
