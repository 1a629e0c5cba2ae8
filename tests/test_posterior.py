"""The posterior q(x_{t−1} | x_t, x_0) and the reverse mean, against independent computations."""

import numpy as np
import pytest
import torch

from ddpm.errors import UserError
from ddpm.process import (
    predict_eps,
    predict_x0,
    q_posterior_mean,
    q_posterior_variance,
    reverse_mean_from_eps,
    reverse_variance,
    training_target,
    v_from_x0_eps,
)
from ddpm.schedules import ScheduleConfig, make_schedule


def _bayes_on_a_grid(x0, xt, t, schedule):
    """p(x_{t−1} | x_t, x_0) ∝ q(x_t | x_{t−1}) q(x_{t−1} | x_0), by brute-force numerical integration."""
    a = schedule.alphas[t].item()
    b = schedule.betas[t].item()
    ab_prev = schedule.alpha_bar_prev[t].item()
    grid = np.linspace(-6, 6, 400_001)
    log_prior = -((grid - np.sqrt(ab_prev) * x0) ** 2) / (2 * (1 - ab_prev))
    log_lik = -((xt - np.sqrt(a) * grid) ** 2) / (2 * b)
    w = np.exp(log_prior + log_lik - (log_prior + log_lik).max())
    w /= w.sum()
    mean = (w * grid).sum()
    return mean, (w * (grid - mean) ** 2).sum()


@pytest.mark.parametrize("name", ["linear", "cosine"])
@pytest.mark.parametrize("t", [1, 10, 250, 800])
def test_posterior_matches_direct_bayes(name, t):
    schedule = make_schedule(ScheduleConfig(schedule=name, num_timesteps=1000))
    x0, xt = 0.7, -0.4
    mean, var = _bayes_on_a_grid(x0, xt, t, schedule)
    like = torch.zeros(1, dtype=torch.float64)
    ours_mean = q_posterior_mean(torch.tensor([x0]).double(), torch.tensor([xt]).double(), t, schedule)
    ours_var = q_posterior_variance(t, schedule, like)
    assert ours_mean.item() == pytest.approx(mean, abs=1e-6)
    assert ours_var.item() == pytest.approx(var, rel=1e-4)


def test_reverse_mean_from_eps_equals_posterior_mean_at_the_implied_x0(linear_schedule):
    """DDPM eq. 11 is eq. 7 with x_0 = (x_t − √(1−ᾱ) ε)/√ᾱ substituted."""
    g = torch.Generator().manual_seed(0)
    t = torch.randint(0, 1000, (64,), generator=g)
    xt = torch.randn(64, 3, generator=g, dtype=torch.float64)
    eps = torch.randn(64, 3, generator=g, dtype=torch.float64)
    x0 = predict_x0(eps, xt, t, linear_schedule, "eps")
    assert torch.allclose(
        reverse_mean_from_eps(xt, t, eps, linear_schedule),
        q_posterior_mean(x0, xt, t, linear_schedule),
        atol=1e-9,
    )


def test_reverse_variance_choices(linear_schedule):
    like = torch.zeros(3, 1, dtype=torch.float64)
    t = torch.tensor([0, 10, 999])
    assert torch.equal(reverse_variance(t, linear_schedule, like, "beta").flatten(), linear_schedule.betas[t])
    assert torch.equal(
        reverse_variance(t, linear_schedule, like, "beta_tilde").flatten(),
        linear_schedule.posterior_variance[t],
    )
    with pytest.raises(ValueError):
        reverse_variance(t, linear_schedule, like, "learned")


@pytest.mark.parametrize("zero_snr", [False, True])
def test_prediction_conversions_round_trip(zero_snr):
    schedule = make_schedule(
        ScheduleConfig(schedule="cosine", num_timesteps=1000, zero_terminal_snr=zero_snr)
    )
    g = torch.Generator().manual_seed(1)
    t = torch.randint(0, 999, (128,), generator=g)
    x0 = torch.rand(128, 2, generator=g, dtype=torch.float64) * 2 - 1
    eps = torch.randn(128, 2, generator=g, dtype=torch.float64)
    ab = schedule.alpha_bar[t][:, None]
    xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    for kind in ("eps", "x0", "v", "mu"):
        out = training_target(x0, eps, t, schedule, kind)
        assert torch.allclose(predict_x0(out, xt, t, schedule, kind), x0, atol=1e-8)
        assert torch.allclose(predict_eps(out, xt, t, schedule, kind), eps, atol=1e-6)
    v = v_from_x0_eps(x0, eps, t, schedule)
    assert torch.allclose(v, ab.sqrt() * eps - (1 - ab).sqrt() * x0)
    # v is dx_φ/dφ for x_φ = cos φ · x_0 + sin φ · ε, φ = arccos √ᾱ (Salimans & Ho 2022, §4)
    phi = torch.arccos(ab.sqrt())
    assert torch.allclose(v, -torch.sin(phi) * x0 + torch.cos(phi) * eps)


def test_v_prediction_recovers_x0_at_zero_terminal_snr():
    schedule = make_schedule(ScheduleConfig(schedule="linear", num_timesteps=1000, zero_terminal_snr=True))
    x0 = torch.tensor([[0.5]], dtype=torch.float64)
    eps = torch.tensor([[1.3]], dtype=torch.float64)
    xt = eps  # ᾱ_T = 0: x_T is pure noise
    v = training_target(x0, eps, 999, schedule, "v")
    assert torch.allclose(predict_x0(v, xt, 999, schedule, "v"), x0)


def test_mean_target_is_the_reverse_mean_at_the_true_noise(linear_schedule):
    """μ̃_t(x_t, x_0) (DDPM eq. 7) equals eq. 11 evaluated with the ε that made x_t."""
    g = torch.Generator().manual_seed(2)
    t = torch.randint(0, 1000, (64,), generator=g)
    x0 = torch.rand(64, 3, generator=g, dtype=torch.float64) * 2 - 1
    eps = torch.randn(64, 3, generator=g, dtype=torch.float64)
    ab = linear_schedule.alpha_bar[t][:, None]
    xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    mu = training_target(x0, eps, t, linear_schedule, "mu")
    assert torch.allclose(mu, reverse_mean_from_eps(xt, t, eps, linear_schedule), atol=1e-9)
    first = training_target(x0, eps, torch.zeros_like(t), linear_schedule, "mu")
    assert torch.allclose(first, x0, atol=1e-12)  # at the first step the mean is x_0 itself


def test_a_mean_model_samples_like_the_eps_model_it_implies(linear_schedule):
    from ddpm.process import eps_denoiser_from_mean
    from ddpm.samplers import SamplerConfig, sample

    def eps_model(xt, t):
        return 0.3 * xt + 0.1 * torch.cos(t.double()[:, None, None, None] / 100)

    def mean_model(xt, t):
        return reverse_mean_from_eps(xt, t.long(), eps_model(xt, t), linear_schedule)

    x_T = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for config in (
        SamplerConfig(sampler="ancestral", steps=20, clip_x0=False),
        SamplerConfig(sampler="ddim", steps=10, eta=0.0, clip_x0=False),
    ):
        ours = sample(
            config, mean_model, x_T, linear_schedule, "mu", generator=torch.Generator().manual_seed(1)
        )
        ref = sample(
            config, eps_model, x_T, linear_schedule, "eps", generator=torch.Generator().manual_seed(1)
        )
        assert torch.allclose(ours, ref, atol=1e-8)
    as_eps = eps_denoiser_from_mean(mean_model, linear_schedule)
    with pytest.raises(UserError, match="training timesteps"):
        as_eps(x_T, torch.full((3,), 10.5, dtype=torch.float64))
