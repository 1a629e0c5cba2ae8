"""The theoretical receptive field of a network: which input pixels can change one output pixel.

Measured, not derived: on a float64 copy of the network whose weights are redrawn at random (so no
zero-initialised layer hides a path) and whose GroupNorms are removed (their statistics span the
whole image but carry only a mean and a variance per group), the gradient of the centre output
pixel with respect to a wide input is non-zero exactly on the receptive field. Self-attention
makes every output depend on every input: such a network's field is the whole image.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ddpm.models.blocks import Attention


def has_self_attention(network: nn.Module) -> bool:
    """Whether any layer of ``network`` attends over all pixels."""
    return any(isinstance(m, Attention) for m in network.modules())


def conv_path_copy(network: nn.Module, seed: int = 0) -> nn.Module:
    """A float64 copy of ``network`` with GroupNorms replaced by the identity and every weight and
    bias redrawn from N(0, 1/fan-in) (seeded), so that every convolution path carries a gradient."""
    net = copy.deepcopy(network).double().eval()
    for module in list(net.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.GroupNorm):
                setattr(module, child_name, nn.Identity())
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            fan_in = p[0].numel() if p.ndim > 1 else 1
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) / fan_in**0.5)
    return net


def receptive_field(forward, in_channels: int, height: int, width: int) -> tuple[int, int]:
    """(rows, columns) spanned by the input pixels on which the centre output pixel of
    ``forward(x) -> y`` (x (1, C, height, width), float64) depends. Choose ``width`` wider than the
    field, or the answer is clipped to the input."""
    x = torch.randn(1, in_channels, height, width, dtype=torch.float64, requires_grad=True)
    y = forward(x)
    y[..., y.shape[-2] // 2, y.shape[-1] // 2].sum().backward()
    support = x.grad.abs().sum(dim=(0, 1)) > 0
    rows = support.any(dim=1).nonzero().flatten()
    cols = support.any(dim=0).nonzero().flatten()
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


def unet_receptive_field(unet: nn.Module, probe_width: int = 1024) -> int | None:
    """Width in pixels of a U-Net's theoretical receptive field (:func:`receptive_field` along the
    rows of a strip ``probe_width`` wide), or None when self-attention makes it the whole image."""
    if has_self_attention(unet):
        return None
    c = unet.config
    net = conv_path_copy(unet)
    t = torch.zeros(1, dtype=torch.float64)
    height = 2 ** (len(c.channel_mult) - 1)
    _, cols = receptive_field(lambda x: net(x, t), c.in_channels, height, probe_width)
    if cols >= probe_width:
        raise ValueError(f"the receptive field fills the {probe_width}-pixel probe; give a wider one")
    return cols
