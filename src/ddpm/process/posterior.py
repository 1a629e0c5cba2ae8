"""The true posterior q(x_{t−1} | x_t, x_0) and the reverse step p_θ(x_{t−1} | x_t) built from it."""

from __future__ import annotations

import torch

from ddpm.process.forward import extract
from ddpm.schedules import NoiseSchedule

VARIANCE_TYPES = ("beta", "beta_tilde", "learned")


def q_posterior_mean(x0: torch.Tensor, xt: torch.Tensor, t, schedule: NoiseSchedule) -> torch.Tensor:
    """μ̃_t(x_t, x_0) = √ᾱ_{t−1} β_t/(1−ᾱ_t) · x_0 + √α_t (1−ᾱ_{t−1})/(1−ᾱ_t) · x_t (DDPM eq. 7)."""
    return (
        extract(schedule.posterior_mean_coef_x0, t, xt) * x0
        + extract(schedule.posterior_mean_coef_xt, t, xt) * xt
    )


def q_posterior_variance(t, schedule: NoiseSchedule, like: torch.Tensor) -> torch.Tensor:
    """β̃_t = (1−ᾱ_{t−1})/(1−ᾱ_t) · β_t, the variance of q(x_{t−1} | x_t, x_0) (DDPM eq. 7)."""
    return extract(schedule.posterior_variance, t, like)


def reverse_mean_from_eps(xt: torch.Tensor, t, eps: torch.Tensor, schedule: NoiseSchedule) -> torch.Tensor:
    """μ_θ(x_t, t) = (x_t − β_t/√(1−ᾱ_t) · ε_θ) / √α_t (DDPM eq. 11; the seed's reverse mean)."""
    beta = extract(schedule.betas, t, xt)
    return (xt - beta / extract(schedule.sqrt_one_minus_alpha_bar, t, xt) * eps) / extract(
        schedule.alphas, t, xt
    ).sqrt()


def reverse_variance(t, schedule: NoiseSchedule, like: torch.Tensor, kind: str = "beta") -> torch.Tensor:
    """σ_t² of the reverse step: β_t ("beta") or β̃_t ("beta_tilde"), DDPM §3.2.

    β_t is optimal for x_0 ~ N(0, I), β̃_t for a deterministic x_0; both are the extremes of the
    reverse-variance bounds and give similar samples at T = 1000.
    """
    if kind == "beta":
        return extract(schedule.betas, t, like)
    if kind == "beta_tilde":
        return q_posterior_variance(t, schedule, like)
    if kind == "learned":
        raise ValueError("a learned variance comes from the network's v output: use learned_log_variance")
    raise ValueError(f"unknown variance type {kind!r}; choose from {VARIANCE_TYPES}")


def learned_log_variance(v: torch.Tensor, t, schedule: NoiseSchedule) -> torch.Tensor:
    """log σ_t² = v log β_t + (1 − v) log β̃_t (Nichol & Dhariwal 2021, eq. 15) for the network's extra
    output v (one value per dimension, unconstrained); log β̃ is clipped at the first step (β̃_1 = 0)."""
    log_beta = extract(schedule.betas.log(), t, v)
    log_beta_tilde = extract(schedule.posterior_log_variance_clipped, t, v)
    return v * log_beta + (1 - v) * log_beta_tilde
