"""Sinusoidal timestep embedding and the MLP that lifts it to the network's embedding width; the class
label embedding and its "no label" index."""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal_embedding(
    t: torch.Tensor,
    dim: int,
    max_period: float = 10_000.0,
    cos_first: bool = True,
    frequency_shift: float = 0.0,
) -> torch.Tensor:
    """(B,) timesteps → (B, dim) features [cos(t·ω_k), sin(t·ω_k)], ω_k = max_period^(−k/(dim/2 − shift)).

    The Transformer position encoding (Vaswani et al. 2017, §3.5) used by DDPM for t (DDPM App. B).
    Works for fractional t as well. The original DDPM code puts sin first and divides by
    dim/2 − 1 (``cos_first=False, frequency_shift=1``, as in diffusers' ``google/ddpm-*`` models).
    """
    if dim % 2:
        raise ValueError(f"embedding dim must be even, got {dim}")
    half = dim // 2
    k = torch.arange(half, device=t.device)
    freqs = torch.exp(-math.log(max_period) * k / (half - frequency_shift))
    angles = t.float()[:, None] * freqs[None]
    pair = [angles.cos(), angles.sin()] if cos_first else [angles.sin(), angles.cos()]
    return torch.cat(pair, dim=1)


class TimestepEmbedding(nn.Module):
    """t → sinusoidal features → Linear → SiLU → Linear, the vector added inside every ResNet block."""

    def __init__(self, base_dim: int, embed_dim: int, cos_first: bool = True, frequency_shift: float = 0.0):
        super().__init__()
        self.base_dim, self.cos_first, self.frequency_shift = base_dim, cos_first, frequency_shift
        self.mlp = nn.Sequential(nn.Linear(base_dim, embed_dim), nn.SiLU(), nn.Linear(embed_dim, embed_dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        features = sinusoidal_embedding(
            t, self.base_dim, cos_first=self.cos_first, frequency_shift=self.frequency_shift
        )
        return self.mlp(features.to(self.mlp[0].weight.dtype))


def null_label(num_classes: int) -> int:
    """The class index meaning "no label": one past the real classes 0 … num_classes − 1.

    Classifier-free guidance (Ho & Salimans 2022) trains with labels dropped to it and samples its
    unconditional branch with it; :func:`class_embedding` gives it a learned row of its own.
    """
    return num_classes


def class_embedding(num_classes: int, embed_dim: int) -> nn.Embedding:
    """The table of class vectors: one row per class, plus the row of :func:`null_label`."""
    return nn.Embedding(null_label(num_classes) + 1, embed_dim)
