"""Conversions between what a network may predict: the noise ε, the clean image x_0, or v.

All follow from x_t = α x_0 + σ ε with α = √ᾱ, σ = √(1−ᾱ) (DDPM eq. 4) and v = α ε − σ x_0
(Salimans & Ho 2022, §4). The ``*_from_*`` functions take ᾱ at the (B,) or scalar timestep
``t`` of a schedule; :func:`split_prediction` takes α and σ directly, for samplers that visit
noise levels between the training steps.
"""

from __future__ import annotations

import torch

from ddpm.process.forward import extract
from ddpm.schedules import NoiseSchedule

PREDICTION_TYPES = ("eps", "x0", "v")


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
    if prediction_type == "eps":
        return (xt - sigma * output) / alpha, output
    if prediction_type == "x0":
        return output, (xt - alpha * output) / sigma
    return alpha * xt - sigma * output, sigma * xt + alpha * output


def _alpha_sigma(t, schedule: NoiseSchedule, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return extract(schedule.sqrt_alpha_bar, t, like), extract(schedule.sqrt_one_minus_alpha_bar, t, like)


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


def predict_x0(
    output: torch.Tensor, xt: torch.Tensor, t, schedule: NoiseSchedule, prediction_type: str
) -> torch.Tensor:
    """The x_0 implied by a network ``output`` of the given prediction type."""
    if prediction_type == "x0":
        return output
    return split_prediction(output, xt, *_alpha_sigma(t, schedule, xt), prediction_type)[0]


def predict_eps(
    output: torch.Tensor, xt: torch.Tensor, t, schedule: NoiseSchedule, prediction_type: str
) -> torch.Tensor:
    """The ε implied by a network ``output`` of the given prediction type."""
    if prediction_type == "eps":
        return output
    return split_prediction(output, xt, *_alpha_sigma(t, schedule, xt), prediction_type)[1]


def training_target(
    x0: torch.Tensor, eps: torch.Tensor, t, schedule: NoiseSchedule, prediction_type: str
) -> torch.Tensor:
    """What the network regresses onto: ε (DDPM Alg. 1), x_0, or v."""
    _check(prediction_type)
    if prediction_type == "eps":
        return eps
    if prediction_type == "x0":
        return x0
    return v_from_x0_eps(x0, eps, t, schedule)
