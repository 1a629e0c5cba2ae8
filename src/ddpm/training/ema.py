"""Exponential moving average of model weights (Polyak averaging; DDPM §4 uses decay 0.9999)."""

from __future__ import annotations

import copy

import torch
from torch import nn


def ema_decay_at(decay: float, step: int) -> float:
    """min(decay, (1 + n)/(10 + n)) after n updates: a short warm-up so that early averages are not
    dominated by the untrained initial weights (which, for a zero-initialised output, predict 0)."""
    return min(decay, (1 + step) / (10 + step))


class EMA:
    """θ_ema ← d · θ_ema + (1 − d) · θ after every optimiser step, d = :func:`ema_decay_at`;
    ``model`` holds θ_ema."""

    def __init__(self, model: nn.Module, decay: float):
        if not 0 <= decay < 1:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """Fold in the weights after optimiser step ``step`` (0-based)."""
        ema_params = list(self.model.parameters())
        params = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema_params, params, 1 - ema_decay_at(self.decay, step))
        for eb, b in zip(self.model.buffers(), model.buffers(), strict=True):
            eb.copy_(b)
