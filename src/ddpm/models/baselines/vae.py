"""A convolutional VAE (Kingma & Welling 2014) with a Gaussian decoder of learned scale.

q(z | x) = N(μ(x), diag σ²(x)) over z ∈ R^latent_dim (strided convolutions down to 4×4, then a
linear layer to μ and log σ²); p(z) = N(0, I); p(x | z) = N(m(z), s² I) with the decoder mean m(z)
(a linear layer to 4×4, then upsampling convolutions) and one learned scalar s for all pixels.
Learning s makes the ELBO a proper bound on a density (so it gives bits/dim) and sets the balance
between reconstruction and KL itself: its optimum is s² = the decoder's mean squared error
(Rybkin et al. 2021, "σ-VAE"). The objective is in :mod:`ddpm.training.baseline_objectives`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from ddpm.models.autoencoder import DiagonalGaussian

if TYPE_CHECKING:
    from ddpm.models.baselines import BaselineConfig

# Initial decoder scale s, in [−1, 1] pixel units. Its optimum is the decoder's RMSE, ≈ 0.5 at first
# and falling as the decoder learns. Starting lower weights the reconstruction more heavily than the
# KL (like β < 1), so the encoder is put to use before the KL can collapse the posterior onto the
# prior; Adam then moves log s by about one learning rate per step towards the RMSE.
INITIAL_DECODER_STD = 0.1


class Encoder(nn.Module):
    """x (B, C, H, W) → (μ, log σ²) of q(z | x), stacked as (B, 2·latent_dim)."""

    def __init__(self, config: BaselineConfig):
        super().__init__()
        n = config.upsamplings
        layers: list[nn.Module] = [nn.Conv2d(config.in_channels, config.width(0), 3, padding=1), nn.SiLU()]
        for depth in range(1, n + 1):
            layers += [nn.Conv2d(config.width(depth - 1), config.width(depth), 4, 2, 1), nn.SiLU()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(config.width(n) * config.start_size**2, 2 * config.latent_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


class Decoder(nn.Module):
    """z (B, latent_dim) → the mean m(z) of p(x | z), (B, C, H, W), unbounded."""

    def __init__(self, config: BaselineConfig):
        super().__init__()
        n, self.start_size = config.upsamplings, config.start_size
        self.project = nn.Linear(config.latent_dim, config.width(n) * self.start_size**2)
        layers: list[nn.Module] = [nn.SiLU()]
        for depth in range(n, 0, -1):
            conv = nn.Conv2d(config.width(depth), config.width(depth - 1), 3, padding=1)
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), conv, nn.SiLU()]
        layers.append(nn.Conv2d(config.width(0), config.in_channels, 3, padding=1))
        self.layers = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.layers(self.project(z).view(z.shape[0], -1, self.start_size, self.start_size))


class VAE(nn.Module):
    """``encode(x)`` → q(z | x) as a :class:`DiagonalGaussian` (``mean``, ``logvar``, ``sample``,
    ``kl``); ``decode(z)`` → the decoder mean; ``log_sigma`` = log s of p(x | z)."""

    def __init__(self, config: BaselineConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.log_sigma = nn.Parameter(torch.tensor(math.log(INITIAL_DECODER_STD)))

    def encode(self, x: torch.Tensor) -> DiagonalGaussian:
        return DiagonalGaussian(self.encoder(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, DiagonalGaussian]:
        """(m(z), q(z | x)) with z ~ q(z | x) by the reparameterisation trick (ε from ``generator``)."""
        posterior = self.encode(x)
        return self.decode(posterior.sample(generator)), posterior

    @torch.no_grad()
    def sample(self, num: int, generator: torch.Generator) -> torch.Tensor:
        """``num`` decoder means m(z), z ~ N(0, I) drawn on the CPU from ``generator``, clamped to
        [−1, 1] (the pixel noise of p(x | z) is left out, as is usual for VAE samples)."""
        weight = self.decoder.project.weight
        z = torch.randn((num, self.config.latent_dim), generator=generator, dtype=weight.dtype)
        return self.decode(z.to(weight.device)).clamp(-1, 1)  # no dropout or BatchNorm: mode-free
