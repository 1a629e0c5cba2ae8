"""The KL-regularised autoencoder of latent diffusion (Rombach et al. 2022, §3 and App. G).

An encoder of ResNet levels maps an image x (B, C, H, W) to the parameters of a diagonal Gaussian
posterior q(z | x) over latents z (B, c, H/f, W/f), with the downsampling factor f = 2^(levels − 1);
a mirrored decoder maps z back to an image. Trained with a reconstruction loss plus a small KL
penalty towards N(0, I) (``ddpm.training.autoencoder_objective``), it gives diffusion a small,
smooth space to work in. The interface follows diffusers' ``AutoencoderKL``: ``encode`` returns the
posterior, ``decode`` an image.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ddpm.models.blocks import Attention, Downsample, Upsample, group_norm
from ddpm.validation import require_ints, require_positive_int

LOGVAR_RANGE = (-30.0, 20.0)  # log σ² is clamped here, as in LDM, so exp() stays finite


@dataclass
class AutoencoderConfig:
    """Shape of the autoencoder. The downsampling factor is f = 2^(len(channel_mult) − 1)."""

    image_size: int = field(default=64, metadata={"help": "height = width of the images it is trained on"})
    in_channels: int = field(default=3, metadata={"help": "image channels (1 grey, 3 RGB)"})
    latent_channels: int = field(default=3, metadata={"help": "channels of the latent z"})
    base_channels: int = field(default=32, metadata={"help": "channels at full resolution"})
    channel_mult: tuple[int, ...] = field(
        default=(1, 2, 2),
        metadata={"help": "width multiplier per level; each level after the first halves H, W"},
    )
    num_res_blocks: int = field(default=1, metadata={"help": "ResNet blocks per encoder level"})
    mid_attention: bool = field(default=True, metadata={"help": "self-attention at the latent resolution"})
    norm_groups: int = field(default=8, metadata={"help": "GroupNorm groups (gcd with the channels)"})

    def __post_init__(self) -> None:
        self.channel_mult = tuple(self.channel_mult)
        for name in ("image_size", "in_channels", "latent_channels", "base_channels", "num_res_blocks"):
            require_positive_int(name, getattr(self, name))
        require_positive_int("norm_groups", self.norm_groups)
        require_ints("channel_mult", self.channel_mult)
        if self.image_size % self.downsampling_factor:
            raise ValueError(
                f"image_size {self.image_size} is not divisible by the downsampling factor "
                f"{self.downsampling_factor}; use fewer levels or another size"
            )

    @property
    def downsampling_factor(self) -> int:
        """f: the latent is (H/f, W/f)."""
        return 2 ** (len(self.channel_mult) - 1)

    @property
    def latent_size(self) -> int:
        return self.image_size // self.downsampling_factor


class DiagonalGaussian:
    """q(z | x) = N(μ, diag σ²), from the encoder's (μ, log σ²) stacked along channels."""

    def __init__(self, parameters: torch.Tensor):
        self.mean, logvar = parameters.chunk(2, dim=1)
        self.logvar = logvar.clamp(*LOGVAR_RANGE)
        self.std = torch.exp(0.5 * self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """z = μ + σ ε, ε ~ N(0, I) (the reparameterisation trick), ε drawn on the CPU from ``generator``."""
        eps = torch.randn(self.mean.shape, generator=generator, dtype=self.mean.dtype)
        return self.mean + self.std * eps.to(self.mean.device)

    def mode(self) -> torch.Tensor:
        return self.mean

    def kl(self) -> torch.Tensor:
        """KL(q(z | x) ‖ N(0, I)) per image, summed over latent elements:
        ½ Σ (μ² + σ² − 1 − log σ²) (Kingma & Welling 2014, App. B)."""
        terms = self.mean.pow(2) + self.logvar.exp() - 1.0 - self.logvar
        return 0.5 * terms.flatten(1).sum(dim=1)


class _ResBlock(nn.Module):
    """GroupNorm → SiLU → conv, twice, plus a skip (1×1 conv where the width changes)."""

    def __init__(self, in_ch: int, out_ch: int, groups: int):
        super().__init__()
        self.norm1, self.conv1 = group_norm(in_ch, groups), nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.norm2, self.conv2 = group_norm(out_ch, groups), nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


def _middle(ch: int, config: AutoencoderConfig) -> nn.Sequential:
    layers = [_ResBlock(ch, ch, config.norm_groups)]
    if config.mid_attention:
        layers.append(Attention(ch, ch, config.norm_groups))  # one head, no context: self-attention
    layers.append(_ResBlock(ch, ch, config.norm_groups))
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    """x (B, C, H, W) → (μ, log σ²) of q(z | x), (B, 2c, H/f, W/f)."""

    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        chs = [config.base_channels * m for m in config.channel_mult]
        layers: list[nn.Module] = [nn.Conv2d(config.in_channels, chs[0], 3, padding=1)]
        ch = chs[0]
        for level, out_ch in enumerate(chs):
            for _ in range(config.num_res_blocks):
                layers.append(_ResBlock(ch, out_ch, config.norm_groups))
                ch = out_ch
            if level < len(chs) - 1:
                layers.append(Downsample(ch))
        layers += [
            _middle(ch, config),
            group_norm(ch, config.norm_groups),
            nn.SiLU(),
            nn.Conv2d(ch, 2 * config.latent_channels, 3, padding=1),
        ]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)

    def feature_blocks(self) -> dict[str, nn.Module]:
        """The ResNet blocks and the middle, named ``enc0 …`` by position: layers whose outputs
        can serve as per-pixel features."""
        return {f"enc{i}": m for i, m in enumerate(self.layers) if isinstance(m, (_ResBlock, nn.Sequential))}


class Decoder(nn.Module):
    """z (B, c, H/f, W/f) → x̂ (B, C, H, W), the encoder mirrored (one more ResNet block per level)."""

    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        chs = [config.base_channels * m for m in config.channel_mult]
        ch = chs[-1]
        layers: list[nn.Module] = [nn.Conv2d(config.latent_channels, ch, 3, padding=1), _middle(ch, config)]
        for level in reversed(range(len(chs))):
            for _ in range(config.num_res_blocks + 1):
                layers.append(_ResBlock(ch, chs[level], config.norm_groups))
                ch = chs[level]
            if level > 0:
                layers.append(Upsample(ch))
        layers += [
            group_norm(ch, config.norm_groups),
            nn.SiLU(),
            nn.Conv2d(ch, config.in_channels, 3, padding=1),
        ]
        self.layers = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.layers(z)


class Autoencoder(nn.Module):
    """The KL autoencoder: ``encode(x)`` → :class:`DiagonalGaussian`, ``decode(z)`` → x̂ in about [−1, 1]."""

    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)

    def encode(self, x: torch.Tensor) -> DiagonalGaussian:
        return DiagonalGaussian(self.encoder(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, DiagonalGaussian]:
        """(x̂, q(z | x)) with x̂ decoded from a posterior sample z ~ q(z | x)."""
        posterior = self.encode(x)
        return self.decode(posterior.sample(generator)), posterior

    @property
    def last_layer_weight(self) -> torch.Tensor:
        """The decoder's output convolution weight (for balancing the adversarial gradient)."""
        return self.decoder.layers[-1].weight
