"""U-Net building blocks: the ResNet block, attention (self and cross), down- and up-sampling."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def group_norm(channels: int, groups: int, eps: float = 1e-6) -> nn.GroupNorm:
    """GroupNorm with gcd(groups, channels) groups: ``groups`` wherever it divides the channels,
    fewer where it does not (as at skip concatenations of unequal widths)."""
    return nn.GroupNorm(math.gcd(groups, channels), channels, eps=eps)


class ResBlock(nn.Module):
    """GroupNorm → SiLU → conv, + Linear(emb), GroupNorm → SiLU → dropout → conv, + skip (DDPM App. B).

    The last conv starts at zero so each block begins as the identity, which steadies early training.
    """

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float, groups: int, eps: float = 1e-6):
        super().__init__()
        self.norm1 = group_norm(in_ch, groups, eps)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, out_ch)
        self.norm2 = group_norm(out_ch, groups, eps)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class Attention(nn.Module):
    """Multi-head attention over the pixels of a feature map, with a residual connection.

    Without ``context`` it is self-attention (DDPM App. B, at 16×16); with a context sequence
    (B, L, context_dim) the pixels query it (cross-attention, Rombach et al. 2022 §3.3), and
    ``context_mask`` (B, L), True for real tokens, hides padding. ``head_channels`` 0 means one head.
    """

    def __init__(
        self,
        channels: int,
        head_channels: int,
        groups: int,
        context_dim: int | None = None,
        eps: float = 1e-6,
    ):
        super().__init__()
        head_channels = head_channels or channels
        if channels % head_channels:
            raise ValueError(f"{channels} channels cannot be split into heads of {head_channels}")
        self.heads = channels // head_channels
        self.norm = group_norm(channels, groups, eps)
        self.q = nn.Linear(channels, channels)
        kv_in = context_dim or channels
        self.kv = nn.Linear(kv_in, 2 * channels)
        self.out = nn.Linear(channels, channels)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        b, c, hgt, wid = x.shape
        h = self.norm(x).flatten(2).transpose(1, 2)  # (B, HW, C)
        source = h if context is None else context
        q = self.q(h)
        k, v = self.kv(source).chunk(2, dim=-1)
        q, k, v = (z.unflatten(-1, (self.heads, -1)).transpose(1, 2) for z in (q, k, v))
        mask = None if context_mask is None else context_mask[:, None, None, :].bool()
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        a = self.out(a.transpose(1, 2).flatten(2))
        return x + a.transpose(1, 2).reshape(b, c, hgt, wid)


class Downsample(nn.Module):
    """Halve the resolution with a stride-2 3×3 convolution, padded by one pixel on every side, or
    (``padding=0``) on the right and bottom only, as the original DDPM code does."""

    def __init__(self, channels: int, padding: int = 1):
        super().__init__()
        self.pad_right_bottom = padding == 0
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad_right_bottom:
            x = F.pad(x, (0, 1, 0, 1))
        return self.conv(x)


class Upsample(nn.Module):
    """Double the resolution: nearest-neighbour upsampling then a 3×3 convolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
