"""A network as the ``denoise(x_t, t)`` callable that samplers expect."""

from __future__ import annotations

import torch
from torch import nn

from ddpm.runtime import autocast


def model_denoiser(model: nn.Module, precision: str = "fp32", channels_last: bool = False, **conditioning):
    """Wrap ``model`` so that ``denoise(x, t)`` runs it without gradients, under the given precision,
    with fixed conditioning keyword arguments (class labels, a conditioning image, a context).

    The output is returned in x's dtype.
    """
    device = next(model.parameters()).device

    @torch.no_grad()
    def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        inp = x.contiguous(memory_format=torch.channels_last) if channels_last else x
        with autocast(precision, device):
            out = model(inp, t, **conditioning)
        return out.to(x.dtype).contiguous()

    return denoise
