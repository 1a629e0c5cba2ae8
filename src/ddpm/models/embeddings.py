"""Sinusoidal timestep embedding and the MLP that lifts it to the network's embedding width; the class
label embedding and its "no label" index."""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """(B,) timesteps → (B, dim) features [cos(t·ω_k), sin(t·ω_k)], ω_k = max_period^(−k/(dim/2)).

    The Transformer position encoding (Vaswani et al. 2017, §3.5) used by DDPM for t (DDPM App. B).
    Works for fractional t as well.
    """
    if dim % 2:
        raise ValueError(f"embedding dim must be even, got {dim}")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.cos(), angles.sin()], dim=1)


class TimestepEmbedding(nn.Module):
    """t → sinusoidal features → Linear → SiLU → Linear, the vector added inside every ResNet block."""

    def __init__(self, base_dim: int, embed_dim: int):
        super().__init__()
        self.base_dim = base_dim
        self.mlp = nn.Sequential(nn.Linear(base_dim, embed_dim), nn.SiLU(), nn.Linear(embed_dim, embed_dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(sinusoidal_embedding(t, self.base_dim).to(self.mlp[0].weight.dtype))


def null_label(num_classes: int) -> int:
    """The class index meaning "no label": one past the real classes 0 … num_classes − 1.

    Classifier-free guidance (Ho & Salimans 2022) trains with labels dropped to it and samples its
    unconditional branch with it; :func:`class_embedding` gives it a learned row of its own.
    """
    return num_classes


def class_embedding(num_classes: int, embed_dim: int) -> nn.Embedding:
    """The table of class vectors: one row per class, plus the row of :func:`null_label`."""
    return nn.Embedding(null_label(num_classes) + 1, embed_dim)
