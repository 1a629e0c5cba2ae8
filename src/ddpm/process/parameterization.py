"""Conversions between what a network may predict: the noise ε, the clean image x_0, or v.

All follow from x_t = √ᾱ x_0 + √(1−ᾱ) ε (DDPM eq. 4) and v = √ᾱ ε − √(1−ᾱ) x_0
(Salimans & Ho 2022, §4). ᾱ is taken at the (B,) or scalar timestep ``t``.
"""

from __future__ import annotations

import torch

from ddpm.process.forward import extract
from ddpm.schedules import NoiseSchedule

PREDICTION_TYPES = ("eps", "x0", "v")


def x0_from_eps(xt: torch.Tensor, t, eps: torch.Tensor, schedule: NoiseSchedule) -> torch.Tensor:
    """x_0 = (x_t − √(1−ᾱ_t) ε) / √ᾱ_t (DDPM eq. 4 solved for x_0; DDIM eq. 9)."""
    return (xt - extract(schedule.sqrt_one_minus_alpha_bar, t, xt) * eps) / extract(
        schedule.sqrt_alpha_bar, t, xt
    )


def eps_from_x0(xt: torch.Tensor, t, x0: torch.Tensor, schedule: NoiseSchedule) -> torch.Tensor:
    """ε = (x_t − √ᾱ_t x_0) / √(1−ᾱ_t) (DDPM eq. 4 solved for ε)."""
    return (xt - extract(schedule.sqrt_alpha_bar, t, xt) * x0) / extract(
        schedule.sqrt_one_minus_alpha_bar, t, xt
    )


def v_from_x0_eps(x0: torch.Tensor, eps: torch.Tensor, t, schedule: NoiseSchedule) -> torch.Tensor:
    """v = √ᾱ_t ε − √(1−ᾱ_t) x_0 (Salimans & Ho 2022, §4)."""
    return (
        extract(schedule.sqrt_alpha_bar, t, x0) * eps - extract(schedule.sqrt_one_minus_alpha_bar, t, x0) * x0
    )


def x0_from_v(xt: torch.Tensor, t, v: torch.Tensor, schedule: NoiseSchedule) -> torch.Tensor:
    """x_0 = √ᾱ_t x_t − √(1−ᾱ_t) v (Salimans & Ho 2022, App. D)."""
    return (
        extract(schedule.sqrt_alpha_bar, t, xt) * xt - extract(schedule.sqrt_one_minus_alpha_bar, t, xt) * v
    )


def eps_from_v(xt: torch.Tensor, t, v: torch.Tensor, schedule: NoiseSchedule) -> torch.Tensor:
    """ε = √(1−ᾱ_t) x_t + √ᾱ_t v (Salimans & Ho 2022, App. D)."""
    return (
        extract(schedule.sqrt_one_minus_alpha_bar, t, xt) * xt + extract(schedule.sqrt_alpha_bar, t, xt) * v
    )


def predict_x0(
    output: torch.Tensor, xt: torch.Tensor, t, schedule: NoiseSchedule, prediction_type: str
) -> torch.Tensor:
    """The x_0 implied by a network ``output`` of the given prediction type."""
    if prediction_type == "eps":
        return x0_from_eps(xt, t, output, schedule)
    if prediction_type == "x0":
        return output
    if prediction_type == "v":
        return x0_from_v(xt, t, output, schedule)
    raise ValueError(f"unknown prediction type {prediction_type!r}; choose from {PREDICTION_TYPES}")


def predict_eps(
    output: torch.Tensor, xt: torch.Tensor, t, schedule: NoiseSchedule, prediction_type: str
) -> torch.Tensor:
    """The ε implied by a network ``output`` of the given prediction type."""
    if prediction_type == "eps":
        return output
    if prediction_type == "x0":
        return eps_from_x0(xt, t, output, schedule)
    if prediction_type == "v":
        return eps_from_v(xt, t, output, schedule)
    raise ValueError(f"unknown prediction type {prediction_type!r}; choose from {PREDICTION_TYPES}")


def training_target(
    x0: torch.Tensor, eps: torch.Tensor, t, schedule: NoiseSchedule, prediction_type: str
) -> torch.Tensor:
    """What the network regresses onto: ε (DDPM Alg. 1), x_0, or v."""
    if prediction_type == "eps":
        return eps
    if prediction_type == "x0":
        return x0
    if prediction_type == "v":
        return v_from_x0_eps(x0, eps, t, schedule)
    raise ValueError(f"unknown prediction type {prediction_type!r}; choose from {PREDICTION_TYPES}")
