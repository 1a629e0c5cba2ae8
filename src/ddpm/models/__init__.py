"""Neural networks: the U-Net and its blocks."""

from ddpm.models.unet import UNet, UNetConfig, count_parameters

__all__ = ["UNet", "UNetConfig", "count_parameters"]
