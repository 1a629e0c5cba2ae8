"""Multi-scale RealNVP (Dinh et al. 2017): an invertible z = f(y) with an exact log-determinant.

Each affine coupling keeps part of its input, x_a, and transforms the rest,
x_b ↦ x_b ⊙ exp(s(x_a)) + t(x_a) (Dinh et al. 2017, §3.2–3.4), so the Jacobian is triangular and
log|det| = Σ s. The kept part is chosen by a checkerboard mask or by splitting the channels, in
alternating parity so every element gets transformed. Each scale (§3.6) applies
``flow_couplings`` checkerboard couplings; every scale but the last then squeezes 2×2 patches into
channels (C, H, W) → (4C, H/2, W/2), applies ``flow_couplings`` channel-wise couplings and factors
half of the channels out to the Gaussian base. s = scale · tanh(raw), with a learned per-channel
scale, keeps exp(s) bounded; the coupling networks are small ResNets whose last convolution is
zero-initialised, so that every coupling starts as the identity. There is no normalisation layer,
so the flow is the same function in train and eval mode and exactly invertible.

Latent layout: z (B, C·H·W) is the factored-out halves, flattened in order of scale, followed by
the last scale's output.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from ddpm.models.baselines import BaselineConfig


def squeeze(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) → (B, 4C, H/2, W/2), channels ordered (row in patch, column in patch, c), so
    that the two channel halves are the top and the bottom rows of each patch, all colours in both."""
    b, c, h, w = x.shape
    x = x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 3, 5, 1, 2, 4)
    return x.reshape(b, 4 * c, h // 2, w // 2)


def unsqueeze(x: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`squeeze`."""
    b, c4, h, w = x.shape
    x = x.view(b, 2, 2, c4 // 4, h, w).permute(0, 3, 4, 1, 5, 2)
    return x.reshape(b, c4 // 4, 2 * h, 2 * w)


def checkerboard(x: torch.Tensor, parity: int) -> torch.Tensor:
    """(1, 1, H, W) mask, 1 where (row + column + parity) is even: the elements a coupling keeps."""
    h, w = x.shape[-2:]
    rows = torch.arange(h, device=x.device)[:, None]
    cols = torch.arange(w, device=x.device)[None, :]
    return ((rows + cols + parity) % 2 == 0).to(x.dtype)[None, None]


class CouplingNet(nn.Module):
    """A small ResNet: conv → ``blocks`` × (ReLU, conv, ReLU, conv, + skip) → ReLU, conv (zero init)."""

    def __init__(self, in_channels: int, out_channels: int, width: int, blocks: int):
        super().__init__()
        self.inp = nn.Conv2d(in_channels, width, 3, padding=1)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.ReLU(),
                nn.Conv2d(width, width, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(width, width, 3, padding=1),
            )
            for _ in range(blocks)
        )
        self.out = nn.Conv2d(width, out_channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for block in self.blocks:
            h = h + block(h)
        return self.out(torch.relu(h))


class AffineCoupling(nn.Module):
    """x_b ↦ x_b ⊙ exp(s(x_a)) + t(x_a), x_a kept; a checkerboard or a channel-half mask."""

    def __init__(self, channels: int, width: int, blocks: int, checkerboard: bool, parity: int):
        super().__init__()
        self.checkerboard, self.parity = checkerboard, parity
        changed = channels if checkerboard else channels // 2
        # the checkerboard net also sees the mask, to tell kept zeros from masked-out ones
        self.net = CouplingNet(channels + 1 if checkerboard else channels // 2, 2 * changed, width, blocks)
        self.scale = nn.Parameter(torch.ones(1, changed, 1, 1))

    def _log_scale_and_shift(self, kept: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw, shift = self.net(kept).chunk(2, dim=1)
        return self.scale * torch.tanh(raw), shift

    def _halves(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = x.chunk(2, dim=1)
        return (b, a) if self.parity else (a, b)

    def _join(self, kept: torch.Tensor, changed: torch.Tensor) -> torch.Tensor:
        return torch.cat([changed, kept] if self.parity else [kept, changed], dim=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(y, log|det ∂y/∂x|) with the log-determinant per image, (B,)."""
        if self.checkerboard:
            mask = checkerboard(x, self.parity)
            s, t = self._log_scale_and_shift(torch.cat([x * mask, mask.expand(len(x), 1, -1, -1)], dim=1))
            s, t = s * (1 - mask), t * (1 - mask)
            return x * torch.exp(s) + t, s.flatten(1).sum(dim=1)
        kept, changed = self._halves(x)
        s, t = self._log_scale_and_shift(kept)
        return self._join(kept, changed * torch.exp(s) + t), s.flatten(1).sum(dim=1)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        if self.checkerboard:
            mask = checkerboard(y, self.parity)
            s, t = self._log_scale_and_shift(torch.cat([y * mask, mask.expand(len(y), 1, -1, -1)], dim=1))
            return (y - t * (1 - mask)) * torch.exp(-s * (1 - mask))
        kept, changed = self._halves(y)
        s, t = self._log_scale_and_shift(kept)
        return self._join(kept, (changed - t) * torch.exp(-s))


class FlowScale(nn.Module):
    """Checkerboard couplings; unless ``last``, then squeeze, channel couplings and a split."""

    def __init__(self, channels: int, config: BaselineConfig, last: bool):
        super().__init__()
        width, blocks, k = config.base_channels, config.flow_blocks, config.flow_couplings
        self.last = last
        self.checker = nn.ModuleList(AffineCoupling(channels, width, blocks, True, i % 2) for i in range(k))
        self.channel = nn.ModuleList(
            AffineCoupling(4 * channels, width, blocks, False, i % 2) for i in range(0 if last else k)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """(h passed on, the factored-out half or None, log-determinant (B,))."""
        log_det = x.new_zeros(len(x))
        for coupling in self.checker:
            x, ld = coupling(x)
            log_det = log_det + ld
        if self.last:
            return x, None, log_det
        x = squeeze(x)
        for coupling in self.channel:
            x, ld = coupling(x)
            log_det = log_det + ld
        h, factored = x.chunk(2, dim=1)
        return h, factored, log_det

    def inverse(self, h: torch.Tensor, factored: torch.Tensor | None) -> torch.Tensor:
        x = h
        if not self.last:
            x = torch.cat([h, factored], dim=1)
            for coupling in reversed(self.channel):
                x = coupling.inverse(x)
            x = unsqueeze(x)
        for coupling in reversed(self.checker):
            x = coupling.inverse(x)
        return x


class RealNVP(nn.Module):
    """z = f(y) for images y (B, C, H, W); ``forward`` → (z (B, C·H·W), log|det ∂z/∂y| (B,))."""

    def __init__(self, config: BaselineConfig):
        super().__init__()
        self.config = config
        c, size, n = config.in_channels, config.image_size, config.flow_scales
        self.scales = nn.ModuleList(FlowScale(c * 2**i, config, last=i == n - 1) for i in range(n))
        # shapes of the latent's parts: each scale's factored half, then the last scale's output
        shapes = [(2 * c * 2**i, size // 2 ** (i + 1), size // 2 ** (i + 1)) for i in range(n - 1)]
        self.latent_shapes = [*shapes, (c * 2 ** (n - 1), size // 2 ** (n - 1), size // 2 ** (n - 1))]

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        parts, log_det, h = [], y.new_zeros(len(y)), y
        for scale in self.scales:
            h, factored, ld = scale(h)
            log_det = log_det + ld
            if factored is not None:
                parts.append(factored.flatten(1))
        return torch.cat([*parts, h.flatten(1)], dim=1), log_det

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """y = f⁻¹(z) for z (B, C·H·W) in the layout of :meth:`forward`."""
        sizes = [math.prod(shape) for shape in self.latent_shapes]
        parts = [
            p.reshape(len(z), *shape)
            for p, shape in zip(z.split(sizes, dim=1), self.latent_shapes, strict=True)
        ]
        h = parts[-1]
        for i in reversed(range(len(self.scales))):
            h = self.scales[i].inverse(h, None if i == len(self.scales) - 1 else parts[i])
        return h

    def log_prob(self, y: torch.Tensor) -> torch.Tensor:
        """log p(y) = log N(f(y); 0, I) + log|det ∂f/∂y| in nats per image, (B,) (§3.1)."""
        z, log_det = self(y)
        return -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(dim=1) + log_det

    @torch.no_grad()
    def sample(self, num: int, generator: torch.Generator, temperature: float = 1.0) -> torch.Tensor:
        """``num`` images f⁻¹(z), z ~ N(0, temperature² I) drawn on the CPU from ``generator``,
        clamped to [−1, 1]."""
        weight = self.scales[0].checker[0].scale
        z = torch.randn((num, self.config.dims), generator=generator, dtype=weight.dtype)
        return self.inverse(temperature * z.to(weight.device)).clamp(-1, 1)
