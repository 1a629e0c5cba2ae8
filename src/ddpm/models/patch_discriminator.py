"""A patch discriminator (Isola et al. 2017, "PatchGAN"), as in the autoencoder of latent diffusion:
it scores every overlapping patch of an image as real or reconstructed, which pushes the decoder
towards sharp local texture instead of the blur a pixel loss alone settles for."""

from __future__ import annotations

import torch
from torch import nn

from ddpm.models.blocks import group_norm


class PatchDiscriminator(nn.Module):
    """x (B, C, H, W) → logits (B, 1, H/2^layers, W/2^layers), one per patch; ``layers`` stride-2
    convolutions starting at ``base_channels`` and doubling."""

    def __init__(self, in_channels: int, base_channels: int = 32, layers: int = 3):
        super().__init__()
        ch, depth = base_channels, layers
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ch, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        for _ in range(depth - 1):
            layers += [
                nn.Conv2d(ch, 2 * ch, 4, stride=2, padding=1),
                group_norm(2 * ch, 8),
                nn.LeakyReLU(0.2),
            ]
            ch *= 2
        layers.append(nn.Conv2d(ch, 1, 3, padding=1))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
