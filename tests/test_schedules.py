import math

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler

from ddpm.schedules import (
    NoiseSchedule,
    ScheduleConfig,
    cosine_alpha_bar,
    cosine_betas,
    linear_betas,
    make_schedule,
    rescale_zero_terminal_snr,
    respace,
    sigmoid_betas,
)


def test_linear_betas_are_the_ddpm_default():
    b = linear_betas(1000)
    assert b.dtype == torch.float64
    assert b[0].item() == pytest.approx(1e-4) and b[-1].item() == pytest.approx(0.02)
    assert torch.allclose(b.diff(), torch.full((999,), (0.02 - 1e-4) / 999, dtype=torch.float64))


def test_cosine_alpha_bar_follows_the_closed_form():
    T = 1000
    alpha_bar = torch.cumprod(1 - cosine_betas(T), 0)
    grid = torch.arange(1, T + 1, dtype=torch.float64) / T
    expected = (
        torch.cos((grid + 0.008) / 1.008 * math.pi / 2) ** 2 / math.cos(0.008 / 1.008 * math.pi / 2) ** 2
    )
    # equal until the 0.999 cap bites at the very end
    assert torch.allclose(alpha_bar[:-5], expected[:-5], rtol=1e-10, atol=1e-12)
    assert cosine_alpha_bar(torch.tensor(0.0, dtype=torch.float64)).item() == pytest.approx(1.0)


def test_cosine_betas_are_capped():
    b = cosine_betas(1000)
    assert b.max().item() == pytest.approx(0.999)
    assert (b > 0).all()


@pytest.mark.parametrize(
    "ours, theirs",
    [
        ("linear", "linear"),
        ("cosine", "squaredcos_cap_v2"),
        ("sigmoid", "sigmoid"),
        ("scaled_linear", "scaled_linear"),
    ],
)
@pytest.mark.parametrize("zero_snr", [False, True])
def test_alpha_bar_matches_diffusers(ours, theirs, zero_snr):
    sched = make_schedule(ScheduleConfig(schedule=ours, num_timesteps=1000, zero_terminal_snr=zero_snr))
    ref = DDPMScheduler(num_train_timesteps=1000, beta_schedule=theirs, rescale_betas_zero_snr=zero_snr)
    # diffusers computes in float32; we keep float64
    np.testing.assert_allclose(
        sched.alpha_bar.numpy(), ref.alphas_cumprod.double().numpy(), rtol=2e-5, atol=1e-7
    )


def test_terminal_alpha_bar_is_tiny_for_linear_and_cosine_and_zero_after_rescale():
    linear = make_schedule(ScheduleConfig(schedule="linear", num_timesteps=1000))
    cosine = make_schedule(ScheduleConfig(schedule="cosine", num_timesteps=1000))
    assert 1e-6 < linear.terminal_alpha_bar < 1e-4  # ≈ 4.0e-5: the seed's "ᾱ_T ≈ 0"
    assert cosine.terminal_alpha_bar < 1e-8
    for name in ("linear", "cosine", "sigmoid"):
        rescaled = make_schedule(ScheduleConfig(schedule=name, num_timesteps=1000, zero_terminal_snr=True))
        assert rescaled.terminal_alpha_bar == 0.0
        assert rescaled.snr[-1].item() == 0.0


def test_zero_terminal_snr_keeps_the_first_step():
    betas = linear_betas(1000)
    rescaled = rescale_zero_terminal_snr(betas)
    ab, ab_new = torch.cumprod(1 - betas, 0), torch.cumprod(1 - rescaled, 0)
    assert ab_new[0].item() == pytest.approx(ab[0].item(), rel=1e-12)
    # √ᾱ is an affine function of the original √ᾱ
    x, y = ab.sqrt().numpy(), ab_new.sqrt().numpy()
    slope, intercept = np.polyfit(x, y, 1)
    np.testing.assert_allclose(slope * x + intercept, y, atol=1e-12)


def test_sigmoid_betas_are_monotone_between_endpoints():
    b = sigmoid_betas(1000, 1e-4, 0.02)
    assert (b.diff() > 0).all() and 1e-4 < b[0] < b[-1] < 0.02


def test_derived_quantities_are_consistent(linear_schedule):
    s = linear_schedule
    assert s.betas.dtype == torch.float64
    assert torch.allclose(s.alpha_bar, torch.cumprod(s.alphas, 0))
    assert torch.allclose(s.snr, s.alpha_bar / (1 - s.alpha_bar))
    assert torch.allclose(s.sigmas**2, (1 - s.alpha_bar) / s.alpha_bar)
    assert torch.allclose(s.lambdas, 0.5 * torch.log(s.snr))
    assert s.alpha_bar_prev[0] == 1 and torch.equal(s.alpha_bar_prev[1:], s.alpha_bar[:-1])
    assert s.posterior_variance[0] == 0
    assert (s.posterior_variance[1:] < s.betas[1:]).all()  # β̃_t < β_t


def test_respace_keeps_alpha_bar(linear_schedule):
    steps = torch.tensor([0, 9, 99, 499, 999])
    short = respace(linear_schedule, steps)
    assert torch.allclose(short.alpha_bar, linear_schedule.alpha_bar[steps])
    with pytest.raises(ValueError):
        respace(linear_schedule, torch.tensor([5, 3]))


def test_bad_configs_are_rejected():
    with pytest.raises(ValueError, match="unknown schedule"):
        ScheduleConfig(schedule="quadratic")
    with pytest.raises(ValueError):
        NoiseSchedule(betas=torch.tensor([0.5, 1.5]))
