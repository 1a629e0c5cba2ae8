"""Conversions between what a network may predict: the noise ε, the clean image x_0, v, or the
reverse-process mean μ.

All follow from x_t = α x_0 + σ ε with α = √ᾱ, σ = √(1−ᾱ) (DDPM eq. 4) and v = α ε − σ x_0
(Salimans & Ho 2022, §4); μ is the posterior mean μ̃_t(x_t, x_0) of DDPM eq. 7, the target of
DDPM's "μ̃ prediction" baseline (Table 2). The ``*_from_*`` functions take ᾱ at the (B,) or scalar
timestep ``t`` of a schedule; :func:`split_prediction` takes α and σ directly, for samplers that
visit noise levels between the training steps. μ depends on the previous step of the training
chain, not on α and σ alone, so a μ model is first turned into an ε model on its own schedule
(:func:`eps_denoiser_from_mean`).
"""

from __future__ import annotations

import torch

from ddpm.errors import UserError
from ddpm.process.forward import alpha_sigma_at, extract, q_sample
from ddpm.process.posterior import q_posterior_mean
from ddpm.schedules import NoiseSchedule

PREDICTION_TYPES = ("eps", "x0", "v", "mu")


def _check(prediction_type: str) -> None:
    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(f"unknown prediction type {prediction_type!r}; choose from {PREDICTION_TYPES}")


def split_prediction(
    output: torch.Tensor, xt: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor, prediction_type: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """(x̂_0, ε̂) implied by a network output at a level with x_t = α x_0 + σ ε.

    eps: x̂_0 = (x_t − σ ε̂)/α; x0: ε̂ = (x_t − α x̂_0)/σ; v: x̂_0 = α x_t − σ v, ε̂ = σ x_t + α v
    (Salimans & Ho 2022, App. D; α² + σ² = 1).
    """
    _check(prediction_type)
    if prediction_type == "mu":
        raise ValueError(
            "a mean-predicting model (prediction_type mu) has no (x0, eps) at a bare noise level; "
            "wrap it with eps_denoiser_from_mean on its training schedule first"
        )
    if prediction_type == "eps":
        return (xt - sigma * output) / alpha, output
    if prediction_type == "x0":
        return output, (xt - alpha * output) / sigma
    return alpha * xt - sigma * output, sigma * xt + alpha * output


def _alpha_sigma(t, schedule: NoiseSchedule, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return alpha_sigma_at(t, schedule, like)


def x0_from_eps(xt: torch.Tensor, t, eps: torch.Tensor, schedule: NoiseSchedule) -> torch.Tensor:
    """x_0 = (x_t − √(1−ᾱ_t) ε) / √ᾱ_t (DDPM eq. 4 solved for x_0; DDIM eq. 9)."""
    return split_prediction(eps, xt, *_alpha_sigma(t, schedule, xt), "eps")[0]


def eps_from_x0(xt: torch.Tensor, t, x0: torch.Tensor, schedule: NoiseSchedule) -> torch.Tensor:
    """ε = (x_t − √ᾱ_t x_0) / √(1−ᾱ_t) (DDPM eq. 4 solved for ε)."""
    return split_prediction(x0, xt, *_alpha_sigma(t, schedule, xt), "x0")[1]


def v_from_x0_eps(x0: torch.Tensor, eps: torch.Tensor, t, schedule: NoiseSchedule) -> torch.Tensor:
    """v = √ᾱ_t ε − √(1−ᾱ_t) x_0 (Salimans & Ho 2022, §4)."""
    alpha, sigma = _alpha_sigma(t, schedule, x0)
    return alpha * eps - sigma * x0


def x0_from_v(xt: torch.Tensor, t, v: torch.Tensor, schedule: NoiseSchedule) -> torch.Tensor:
    """x_0 = √ᾱ_t x_t − √(1−ᾱ_t) v (Salimans & Ho 2022, App. D)."""
    return split_prediction(v, xt, *_alpha_sigma(t, schedule, xt), "v")[0]


def eps_from_v(xt: torch.Tensor, t, v: torch.Tensor, schedule: NoiseSchedule) -> torch.Tensor:
    """ε = √(1−ᾱ_t) x_t + √ᾱ_t v (Salimans & Ho 2022, App. D)."""
    return split_prediction(v, xt, *_alpha_sigma(t, schedule, xt), "v")[1]


def mean_from_x0(xt: torch.Tensor, t, x0: torch.Tensor, schedule: NoiseSchedule) -> torch.Tensor:
    """μ = μ̃_t(x_t, x_0) = c_0 x_0 + c_t x_t (DDPM eq. 7)."""
    return q_posterior_mean(x0, xt, t, schedule)


def x0_from_mean(xt: torch.Tensor, t, mu: torch.Tensor, schedule: NoiseSchedule) -> torch.Tensor:
    """x_0 = (μ − c_t x_t) / c_0 with c_0 = √ᾱ_{t−1} β_t/(1−ᾱ_t), c_t = √α_t (1−ᾱ_{t−1})/(1−ᾱ_t)
    (DDPM eq. 7 solved for x_0; c_0 = 1, c_t = 0 at the first step, where μ = x_0)."""
    c0 = extract(schedule.posterior_mean_coef_x0, t, xt)
    ct = extract(schedule.posterior_mean_coef_xt, t, xt)
    return (mu - ct * xt) / c0


def predict_x0(
    output: torch.Tensor, xt: torch.Tensor, t, schedule: NoiseSchedule, prediction_type: str
) -> torch.Tensor:
    """The x_0 implied by a network ``output`` of the given prediction type (for ``mu``, ``schedule``
    must be the chain the network was trained on)."""
    if prediction_type == "x0":
        return output
    if prediction_type == "mu":
        return x0_from_mean(xt, t, output, schedule)
    return split_prediction(output, xt, *_alpha_sigma(t, schedule, xt), prediction_type)[0]


def predict_eps(
    output: torch.Tensor, xt: torch.Tensor, t, schedule: NoiseSchedule, prediction_type: str
) -> torch.Tensor:
    """The ε implied by a network ``output`` of the given prediction type (for ``mu``, ``schedule``
    must be the chain the network was trained on)."""
    if prediction_type == "eps":
        return output
    if prediction_type == "mu":
        return eps_from_x0(xt, t, x0_from_mean(xt, t, output, schedule), schedule)
    return split_prediction(output, xt, *_alpha_sigma(t, schedule, xt), prediction_type)[1]


def eps_denoiser_from_mean(denoise, schedule: NoiseSchedule):
    """``denoise(x_t, t) -> μ̂`` as ``(x_t, t) -> ε̂`` on its training ``schedule`` (DDPM eqs. 7 and 4),
    so that every sampler runs a mean-predicting model; it answers at training timesteps only."""

    def as_eps(xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        index = t.round().long()
        if not torch.equal(index.to(t.dtype), t):
            raise UserError(
                "a mean-predicting model (prediction_type mu) answers only at its training timesteps; "
                "sample it with ancestral, ddim or a solver whose steps fall on them"
            )
        index = index.clamp(0, schedule.num_timesteps - 1)
        mu = denoise(xt, t)
        return predict_eps(mu.to(xt.dtype), xt, index.to(xt.device), schedule, "mu")

    return as_eps


def training_target(
    x0: torch.Tensor, eps: torch.Tensor, t, schedule: NoiseSchedule, prediction_type: str
) -> torch.Tensor:
    """What the network regresses onto: ε (DDPM Alg. 1), x_0, v, or μ̃_t(x_t, x_0) (DDPM eq. 7)."""
    _check(prediction_type)
    if prediction_type == "eps":
        return eps
    if prediction_type == "x0":
        return x0
    if prediction_type == "mu":
        return mean_from_x0(q_sample(x0, t, schedule, eps), t, x0, schedule)
    return v_from_x0_eps(x0, eps, t, schedule)
