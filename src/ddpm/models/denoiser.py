"""A network as the ``denoise(x_t, t)`` callable that samplers expect (optionally a guided pair)."""

from __future__ import annotations

import torch
from torch import nn

from ddpm.runtime import autocast


def model_denoiser(model: nn.Module, precision: str = "fp32", channels_last: bool = False, **conditioning):
    """Wrap ``model`` so that ``denoise(x, t)`` runs it without gradients, under the given precision,
    with fixed conditioning keyword arguments (class labels, a conditioning image, a context).

    Inputs move to the model's device (timesteps and labels often live on the CPU); the output is
    returned in x's dtype, on x's device.
    """
    device = next(model.parameters()).device
    conditioning = {k: v.to(device) if torch.is_tensor(v) else v for k, v in conditioning.items()}

    @torch.no_grad()
    def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        inp = x.to(device)
        inp = inp.contiguous(memory_format=torch.channels_last) if channels_last else inp
        with autocast(precision, device):
            out = model(inp, t.to(device), **conditioning)
        return out.to(device=x.device, dtype=x.dtype).contiguous()

    return denoise


def model_pair_denoiser(
    model: nn.Module,
    conditional: dict,
    unconditional: dict,
    precision: str = "fp32",
    channels_last: bool = False,
):
    """``pair(x, t) -> (out | conditional, out | unconditional)`` in one batched network call.

    ``conditional`` and ``unconditional`` map the model's keyword arguments (``class_labels``,
    ``context``, ``context_mask``, ``cond_image``) to per-sample tensors of x's batch size; the two
    halves are concatenated along the batch, so guidance costs one call of twice the batch.
    """
    if conditional.keys() != unconditional.keys():
        raise ValueError("conditional and unconditional inputs must name the same arguments")
    joint = {k: torch.cat([conditional[k], unconditional[k]]) for k in conditional}
    denoise = model_denoiser(model, precision, channels_last, **joint)

    def pair(x: torch.Tensor, t: torch.Tensor):
        return denoise(torch.cat([x, x]), torch.cat([t, t])).chunk(2)

    return pair
