"""DCGAN (Radford et al. 2016) with a spectrally normalised discriminator (Miyato et al. 2018).

The generator maps z ~ N(0, I) through a linear layer to a 4×4 map (``config.start_size``), then
transposed convolutions with BatchNorm and ReLU double the resolution up to the image, and a last
convolution with tanh gives pixels in [−1, 1]. The discriminator mirrors it with strided 4×4
convolutions, LeakyReLU(0.2) and no BatchNorm; every weight is divided by its spectral norm, which
bounds the discriminator's Lipschitz constant. Samples come from an exponential moving average of
the generator, which usually gives better samples than the raw iterate (Yazıcı et al. 2019).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

if TYPE_CHECKING:
    from ddpm.models.baselines import BaselineConfig


class Generator(nn.Module):
    """G: z (B, latent_dim) → images (B, C, H, W) in [−1, 1]."""

    def __init__(self, config: BaselineConfig):
        super().__init__()
        n, self.start_size = config.upsamplings, config.start_size
        widths = [config.width(depth) for depth in range(n, -1, -1)]  # smallest map first
        self.project = nn.Linear(config.latent_dim, widths[0] * self.start_size**2, bias=False)
        layers: list[nn.Module] = [nn.BatchNorm2d(widths[0]), nn.ReLU()]
        for w_in, w_out in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.ConvTranspose2d(w_in, w_out, 4, 2, 1, bias=False), nn.BatchNorm2d(w_out), nn.ReLU()]
        layers += [nn.Conv2d(widths[-1], config.in_channels, 3, padding=1), nn.Tanh()]
        self.layers = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.project(z).view(z.shape[0], -1, self.start_size, self.start_size)
        return self.layers(h)


class Discriminator(nn.Module):
    """D: images (B, C, H, W) → one logit per image (B,), every layer spectrally normalised."""

    def __init__(self, config: BaselineConfig):
        super().__init__()
        n = config.upsamplings
        layers: list[nn.Module] = [
            spectral_norm(nn.Conv2d(config.in_channels, config.width(0), 3, padding=1)),
            nn.LeakyReLU(0.2),
        ]
        for depth in range(1, n + 1):
            conv = nn.Conv2d(config.width(depth - 1), config.width(depth), 4, 2, 1)
            layers += [spectral_norm(conv), nn.LeakyReLU(0.2)]
        self.features = nn.Sequential(*layers)
        self.head = spectral_norm(nn.Linear(config.width(n) * config.start_size**2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1)).squeeze(1)


class GAN(nn.Module):
    """The generator, the discriminator, and ``generator_ema`` (an EMA of the generator, always in
    eval mode, never trained by gradients) that :meth:`sample` draws from."""

    def __init__(self, config: BaselineConfig):
        super().__init__()
        self.config = config
        self.generator = Generator(config)
        self.discriminator = Discriminator(config)
        self.generator_ema = copy.deepcopy(self.generator).eval().requires_grad_(False)

    def train(self, mode: bool = True) -> GAN:
        super().train(mode)
        self.generator_ema.eval()  # BatchNorm always uses the running statistics copied in
        return self

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """G(z) of the trained (non-averaged) generator."""
        return self.generator(z)

    @torch.no_grad()
    def update_ema(self, decay: float) -> None:
        """θ_ema ← decay · θ_ema + (1 − decay) · θ for the parameters; buffers (BatchNorm's running
        statistics) are copied, as they are estimates of the current generator's activations."""
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA decay must be in [0, 1], got {decay}")
        params = zip(self.generator_ema.parameters(), self.generator.parameters(), strict=True)
        for ema_param, param in params:
            ema_param.lerp_(param.detach(), 1.0 - decay)
        for ema_buffer, buffer in zip(self.generator_ema.buffers(), self.generator.buffers(), strict=True):
            ema_buffer.copy_(buffer)

    @torch.no_grad()
    def sample(self, num: int, generator: torch.Generator) -> torch.Tensor:
        """``num`` images in [−1, 1] from the EMA generator, z ~ N(0, I) drawn on the CPU from
        ``generator`` (so a seed gives the same images on any device)."""
        weight = self.generator_ema.project.weight
        z = torch.randn((num, self.config.latent_dim), generator=generator, dtype=weight.dtype)
        return self.generator_ema.eval()(z.to(weight.device))
