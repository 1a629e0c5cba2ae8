"""The variational bound in bits/dim, for Gaussian data and its exact optimal denoiser."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from ddpm.eval.nll import variational_bound
from ddpm.process.vlb import discretized_gaussian_log_likelihood, normal_kl
from ddpm.schedules import ScheduleConfig, make_schedule

MU, STD, N = 0.1, 0.3, 4000


def _discrete_gaussian_data(g):
    x = MU + STD * torch.randn(N, 1, 1, 1, generator=g, dtype=torch.float64)
    return (((x.clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1).float()


def _exact_x0_denoiser(schedule):
    def denoise(x, t):
        ab = schedule.alpha_bar[t].to(torch.float64)[:, None, None, None]
        x = x.double()
        return MU + ab.sqrt() * STD**2 / (ab * STD**2 + 1 - ab) * (x - ab.sqrt() * MU)

    return denoise


def _numpy_schedule(schedule, variance):
    """β, ᾱ, ᾱ_prev, β̃ and the reverse variance σ² (its t = 1 value set to β̃_2), in NumPy."""
    b = schedule.betas.numpy()
    ab = schedule.alpha_bar.numpy()
    ab_prev = np.concatenate([[1.0], ab[:-1]])
    post_var = b * (1 - ab_prev) / (1 - ab)
    model_var = post_var.copy() if variance == "beta_tilde" else b.copy()
    model_var[0] = post_var[1]
    return b, ab, ab_prev, post_var, model_var


def _independent_bound(x0, schedule, noise_per_t, variance):
    """The same bound, written out in NumPy/SciPy from the DDPM paper's formulas."""
    b, ab, ab_prev, post_var, model_var = _numpy_schedule(schedule, variance)
    x0 = x0.double().flatten().numpy()
    total = np.zeros_like(x0)
    for t in range(len(b)):
        xt = math.sqrt(ab[t]) * x0 + math.sqrt(1 - ab[t]) * noise_per_t[t]
        x0_hat = np.clip(
            MU + math.sqrt(ab[t]) * STD**2 / (ab[t] * STD**2 + 1 - ab[t]) * (xt - math.sqrt(ab[t]) * MU),
            -1,
            1,
        )
        c0 = math.sqrt(ab_prev[t]) * b[t] / (1 - ab[t])
        ct = math.sqrt(1 - b[t]) * (1 - ab_prev[t]) / (1 - ab[t])
        model_mean = c0 * x0_hat + ct * xt
        if t == 0:
            sd = math.sqrt(model_var[0])
            upper = np.where(x0 > 0.999, 1.0, stats.norm.cdf(x0 + 1 / 255, model_mean, sd))
            lower = np.where(x0 < -0.999, 0.0, stats.norm.cdf(x0 - 1 / 255, model_mean, sd))
            total += -np.log(np.maximum(upper - lower, 1e-12))
        else:
            true_mean = c0 * x0 + ct * xt
            v1, v2 = post_var[t], model_var[t]
            total += 0.5 * (np.log(v2 / v1) + v1 / v2 + (true_mean - model_mean) ** 2 / v2 - 1)
    mean_T, var_T = math.sqrt(ab[-1]) * x0, 1 - ab[-1]
    total += 0.5 * (-np.log(var_T) + var_T + mean_T**2 - 1)
    return total / math.log(2)


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_bound_matches_an_independent_computation(variance):
    schedule = make_schedule(ScheduleConfig(schedule="linear", num_timesteps=200, beta_end=0.1))
    x0 = _discrete_gaussian_data(torch.Generator().manual_seed(0))[:500]
    terms = variational_bound(
        _exact_x0_denoiser(schedule),
        x0,
        schedule,
        prediction_type="x0",
        variance=variance,
        generator=torch.Generator().manual_seed(1),
    )
    g = torch.Generator().manual_seed(1)
    noise = [torch.randn(x0.shape, generator=g, dtype=torch.float64).flatten().numpy() for _ in range(200)]
    # the network sees float32 x_t, as a real one would: agreement to float32 precision
    np.testing.assert_allclose(terms.total, _independent_bound(x0, schedule, noise, variance), rtol=1e-5)


def _exact_model_nll_bits(x0, schedule, variance):
    """−log₂ p_θ(x_0) of the reverse chain itself. With the (linear) exact denoiser and no clipping,
    p_θ is a linear-Gaussian chain, so every marginal is Gaussian and the bin probability is exact."""
    b, ab, ab_prev, post_var, model_var = _numpy_schedule(schedule, variance)
    mean, var = 0.0, 1.0  # x_T ~ N(0, 1)
    for t in reversed(range(len(b))):
        k = math.sqrt(ab[t]) * STD**2 / (ab[t] * STD**2 + 1 - ab[t])
        c0 = math.sqrt(ab_prev[t]) * b[t] / (1 - ab[t])
        ct = math.sqrt(1 - b[t]) * (1 - ab_prev[t]) / (1 - ab[t])
        slope, offset = c0 * k + ct, c0 * (MU - k * math.sqrt(ab[t]) * MU)
        mean, var = slope * mean + offset, slope**2 * var + model_var[t]
    x = x0.double().flatten().numpy()
    sd = math.sqrt(var)
    upper = np.where(x > 0.999, 1.0, stats.norm.cdf(x + 1 / 255, mean, sd))
    lower = np.where(x < -0.999, 0.0, stats.norm.cdf(x - 1 / 255, mean, sd))
    return -np.log2(upper - lower)


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_bound_is_above_the_exact_model_likelihood(variance):
    """E[bound] ≥ −log p_θ(x_0), computed in closed form for the linear-Gaussian reverse chain."""
    schedule = make_schedule(ScheduleConfig(schedule="linear", num_timesteps=1000))
    x0 = _discrete_gaussian_data(torch.Generator().manual_seed(2))
    terms = variational_bound(
        _exact_x0_denoiser(schedule),
        x0,
        schedule,
        "x0",
        variance,
        clip_x0=False,
        generator=torch.Generator().manual_seed(3),
    )
    exact = _exact_model_nll_bits(x0, schedule, variance)
    gap = terms.total - exact
    assert gap.mean() > -3 * gap.std() / math.sqrt(N)
    # the model is the data distribution, so its likelihood is the data entropy
    edges = np.concatenate([[-np.inf], (np.arange(255) + 0.5) / 127.5 - 1, [np.inf]])
    p = np.diff(stats.norm.cdf(edges, MU, STD))
    entropy_bits = -(p[p > 0] * np.log2(p[p > 0])).sum()
    assert abs(exact.mean() - entropy_bits) < 0.05
    assert terms.prior.mean() < 1e-4  # ᾱ_T ≈ 4e-5: almost no information left at T


def test_normal_kl_and_decoder_limits():
    assert normal_kl(0.0, 0.0, 0.0, 0.0).item() == 0.0
    assert normal_kl(1.0, 0.0, 0.0, 0.0).item() == pytest.approx(0.5)
    # a very sharp decoder centred on the pixel puts all its mass in that pixel's bin
    x = torch.tensor([-1.0, 0.0 / 127.5, 1.0])
    ll = discretized_gaussian_log_likelihood(x, x, torch.full((3,), -10.0))
    assert torch.allclose(ll, torch.zeros(3, dtype=torch.float64), atol=1e-6)
