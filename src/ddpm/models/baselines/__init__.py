"""Baseline generative models to compare diffusion with: a GAN, a VAE and a normalising flow.

- ``gan``: DCGAN (Radford et al. 2016) with a spectrally normalised discriminator (Miyato et al.
  2018), trained with the hinge loss; samples come from an EMA of the generator.
- ``vae``: a convolutional VAE (Kingma & Welling 2014) with a Gaussian decoder of learned σ.
- ``flow``: multi-scale RealNVP (Dinh et al. 2017), exact likelihood.

All three take and produce images (B, C, H, W) in [−1, 1]; their objectives are in
:mod:`ddpm.training.baseline_objectives`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

# the model modules import BaselineConfig only for type hints, so importing them first is no cycle
from ddpm.models.baselines.flow import RealNVP
from ddpm.models.baselines.gan import GAN, Discriminator, Generator
from ddpm.models.baselines.vae import VAE
from ddpm.validation import InvalidValue, require_choice, require_positive_int

BASELINE_FAMILIES = ("gan", "vae", "flow")


@dataclass
class BaselineConfig:
    """Which baseline and its shape."""

    family: str = field(default="gan", metadata={"help": "model family: gan, vae or flow"})
    image_size: int = field(
        default=32,
        metadata={"help": "height = width; divisible by 8 (gan, vae) or by 2^flow_scales (flow)"},
    )
    in_channels: int = field(default=1, metadata={"help": "image channels (1 grey, 3 RGB)"})
    base_channels: int = field(
        default=64, metadata={"help": "width of the conv nets (GAN G/D, VAE encoder/decoder, flow couplings)"}
    )
    latent_dim: int = field(default=128, metadata={"help": "size of the latent z (gan, vae)"})
    flow_scales: int = field(default=3, metadata={"help": "RealNVP multi-scale levels (flow)"})
    flow_couplings: int = field(
        default=4, metadata={"help": "affine couplings per mask type and scale, masks alternating (flow)"}
    )
    flow_blocks: int = field(default=2, metadata={"help": "residual blocks in each coupling network (flow)"})

    def __post_init__(self) -> None:
        require_choice("family", self.family, BASELINE_FAMILIES)
        for name in (
            "image_size",
            "in_channels",
            "base_channels",
            "latent_dim",
            "flow_scales",
            "flow_couplings",
            "flow_blocks",
        ):
            require_positive_int(name, getattr(self, name))
        if self.family == "flow" and self.image_size % 2**self.flow_scales:
            rule = f"must be divisible by 2^flow_scales = {2**self.flow_scales} for the flow"
            raise InvalidValue("image_size", rule, self.image_size)
        if self.family != "flow" and self.image_size % 8:
            raise InvalidValue("image_size", f"must be divisible by 8 for the {self.family}", self.image_size)

    @property
    def upsamplings(self) -> int:
        """Stride-2 stages between the smallest feature map of the GAN/VAE and the image: the most
        halvings of ``image_size`` that leave an integer ≥ 4 (3 for 32 px: 4 → 8 → 16 → 32)."""
        n, size = 0, self.image_size
        while size % 2 == 0 and size // 2 >= 4:
            n, size = n + 1, size // 2
        return n

    @property
    def start_size(self) -> int:
        """Side of the smallest feature map of the GAN/VAE (4 for power-of-two sizes)."""
        return self.image_size // 2**self.upsamplings

    def width(self, depth: int) -> int:
        """Channels of the GAN/VAE conv nets ``depth`` halvings below full resolution: doubling
        per halving from ``base_channels``, at most 8× (DCGAN's widths)."""
        return self.base_channels * min(2**depth, 8)

    @property
    def dims(self) -> int:
        """Numbers per image, C·H·W."""
        return self.in_channels * self.image_size**2


def build_baseline(config: BaselineConfig) -> nn.Module:
    """The model of ``config.family``: :class:`GAN`, :class:`VAE` or :class:`RealNVP`."""
    return {"gan": GAN, "vae": VAE, "flow": RealNVP}[config.family](config)


__all__ = [
    "BASELINE_FAMILIES",
    "GAN",
    "VAE",
    "BaselineConfig",
    "Discriminator",
    "Generator",
    "RealNVP",
    "build_baseline",
]
