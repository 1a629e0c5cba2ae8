"""The forward process: the iterated one-step chain and the closed form agree in distribution."""

import pytest
import torch
from scipy import stats

from ddpm.process import q_sample, q_step_sample
from ddpm.schedules import ScheduleConfig, make_schedule

N = 40_000


def _data(n, g):
    """A decidedly non-Gaussian x_0 with mean 0.3: a mixture of two narrow bumps."""
    sign = torch.where(torch.rand(n, generator=g, dtype=torch.float64) < 0.65, 1.0, -1.0)
    return 0.3 + 0.6 * sign - 0.6 * 0.3 + 0.05 * torch.randn(n, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("name", ["linear", "cosine"])
@pytest.mark.parametrize("t", [0, 9, 99, 499])
def test_iterated_chain_matches_closed_form(name, t):
    schedule = make_schedule(ScheduleConfig(schedule=name, num_timesteps=1000))
    g = torch.Generator().manual_seed(t)
    x0 = _data(N, g)
    x = x0.clone()
    for s in range(t + 1):  # code steps 0..t are the seed's steps 1..t+1
        x = q_step_sample(x, s, schedule, torch.randn(N, generator=g, dtype=torch.float64))
    jump = q_sample(_data(N, g), t, schedule, torch.randn(N, generator=g, dtype=torch.float64))

    ab = schedule.alpha_bar[t].item()
    mean0, var0 = x0.mean().item(), x0.var().item()
    expected_mean = ab**0.5 * mean0
    expected_var = ab * var0 + (1 - ab)
    for sample in (x, jump):
        se_mean = (expected_var / N) ** 0.5
        assert abs(sample.mean().item() - expected_mean) < 5 * se_mean
        se_var = expected_var * (2 / (N - 1)) ** 0.5 * 1.5  # allow for the non-Gaussian kurtosis
        assert abs(sample.var().item() - expected_var) < 5 * se_var
    # same distribution, not just the same two moments
    assert stats.ks_2samp(x.numpy(), jump.numpy()).pvalue > 1e-3


def test_unit_variance_data_keeps_unit_variance_along_the_chain():
    schedule = make_schedule(ScheduleConfig(schedule="linear", num_timesteps=1000))
    g = torch.Generator().manual_seed(0)
    x = torch.where(torch.rand(N, generator=g) < 0.5, -1.0, 1.0).double()  # variance 1, far from Gaussian
    variances = []
    for s in range(1000):
        x = q_step_sample(x, s, schedule, torch.randn(N, generator=g, dtype=torch.float64))
        if s % 100 == 99:
            variances.append(x.var().item())
    assert all(abs(v - 1) < 0.04 for v in variances), variances


def test_without_the_sqrt_scaling_variance_explodes():
    """The seed's point: x_t = x_{t−1} + √β_t ε (no √(1−β) factor) lets the variance grow."""
    schedule = make_schedule(ScheduleConfig(schedule="linear", num_timesteps=1000))
    expected_unscaled = 1 + schedule.betas.sum().item()
    assert expected_unscaled > 10
    g = torch.Generator().manual_seed(1)
    x = torch.randn(N, generator=g, dtype=torch.float64)
    for s in range(1000):
        x = q_step_sample(x, s, schedule, torch.randn(N, generator=g, dtype=torch.float64))
    assert abs(x.var().item() - 1) < 0.05


def test_closed_form_end_is_almost_pure_noise():
    schedule = make_schedule(ScheduleConfig(schedule="linear", num_timesteps=1000))
    g = torch.Generator().manual_seed(2)
    x0 = torch.full((N,), 0.9, dtype=torch.float64)
    xT = q_sample(x0, 999, schedule, torch.randn(N, generator=g, dtype=torch.float64))
    assert stats.kstest(xT.numpy(), "norm").pvalue > 1e-3
