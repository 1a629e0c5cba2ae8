"""Exponential moving averages of model weights (Polyak averaging; DDPM §4 uses decay 0.9999).

Three kinds, ``train.ema``:

- ``warmup``: decay min(d, (1 + n)/(10 + n)) after n updates (:func:`ema_decay_at`), so early
  averages are not dominated by the untrained initial weights;
- ``fixed``: decay d from the first update;
- ``power``: EDM2's power-function EMA (Karras et al. 2024, §3.1): β(t) = (1 − 1/t)^(γ+1) at update t,
  which averages θ_1 … θ_t with weights ∝ τ^γ, a window that grows with training; its width is
  σ_rel, the profile's standard deviation relative to the training length (:func:`sigma_rel_to_gamma`).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn

EMA_KINDS = ("warmup", "fixed", "power")


def ema_decay_at(decay: float, step: int) -> float:
    """min(decay, (1 + n)/(10 + n)) after n updates: a short warm-up so that early averages are not
    dominated by the untrained initial weights (which, for a zero-initialised output, predict 0)."""
    return min(decay, (1 + step) / (10 + step))


def power_ema_beta(step: int, gamma: float) -> float:
    """β = (1 − 1/t)^(γ+1) at update t = step + 1 (EDM2 eq. 2; β = 0 at the first update)."""
    t = step + 1
    return (1 - 1 / t) ** (gamma + 1)


def power_profile(num_updates: int, gamma: float) -> np.ndarray:
    """(t,) weight of θ_1 … θ_t in the power EMA after t updates, in closed form:
    w_τ = (τ/t)^(γ+1) − ((τ−1)/t)^(γ+1) (the product of the β's telescopes); the weights sum to 1."""
    tau = np.arange(1, num_updates + 1, dtype=np.float64)
    return (tau / num_updates) ** (gamma + 1) - ((tau - 1) / num_updates) ** (gamma + 1)


def gamma_to_sigma_rel(gamma: float) -> float:
    """σ_rel = √((γ+1) / ((γ+2)²(γ+3))): the standard deviation of the profile ∝ τ^γ on [0, 1]
    (EDM2 eq. 3)."""
    return math.sqrt((gamma + 1) / ((gamma + 2) ** 2 * (gamma + 3)))


def sigma_rel_to_gamma(sigma_rel: float) -> float:
    """The γ > −1 whose profile has relative width σ_rel (:func:`gamma_to_sigma_rel` inverted: the
    largest real root of σ²(γ+2)²(γ+3) − (γ+1) = 0; EDM2's σ_rel 0.05 ↔ γ ≈ 16.97, 0.10 ↔ 6.94)."""
    s2 = sigma_rel**2
    roots = np.roots([s2, 7 * s2, 16 * s2 - 1, 12 * s2 - 1]) if sigma_rel > 0 else np.array([])
    real = roots[np.abs(roots.imag) < 1e-7].real
    real = real[real > -1]
    if len(real) == 0:
        raise ValueError(f"σ_rel must be in (0, 0.29] (a power EMA's relative width), got {sigma_rel}")
    return float(real.max())


class EMA:
    """θ_ema ← d · θ_ema + (1 − d) · θ after every optimiser step, d by ``kind`` (see the module);
    ``model`` holds θ_ema. ``sigma_rel`` sets the power EMA's width."""

    def __init__(self, model: nn.Module, decay: float, kind: str = "warmup", sigma_rel: float = 0.05):
        if kind not in EMA_KINDS:
            raise ValueError(f"unknown EMA kind {kind!r}; choose from {', '.join(EMA_KINDS)}")
        if kind != "power" and not 0 <= decay < 1:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay, self.kind = decay, kind
        self.gamma = sigma_rel_to_gamma(sigma_rel) if kind == "power" else None
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    def decay_at(self, step: int) -> float:
        """d for the update after optimiser step ``step`` (0-based)."""
        if self.kind == "power":
            return power_ema_beta(step, self.gamma)
        return ema_decay_at(self.decay, step) if self.kind == "warmup" else self.decay

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """Fold in the weights after optimiser step ``step`` (0-based)."""
        ema_params = list(self.model.parameters())
        params = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema_params, params, 1 - self.decay_at(step))
        for eb, b in zip(self.model.buffers(), model.buffers(), strict=True):
            eb.copy_(b)
