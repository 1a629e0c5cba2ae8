"""Classifier-free guidance (Ho & Salimans 2022): one network, conditional and unconditional."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ddpm.samplers.common import Denoiser

PairDenoiser = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""``pair(x_t, t) -> (conditional output, unconditional output)``, ideally from one batched call."""


def classifier_free_guidance(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """ε̃ = ε_∅ + s (ε_c − ε_∅) (Ho & Salimans 2022, eq. 6 with s = 1 + w).

    s = 0 is the unconditional model, s = 1 the conditional one, s > 1 extrapolates past it. The
    combination is linear, so it applies to ε-, x0- and v-predictions alike.
    """
    return uncond + scale * (cond - uncond)


def guided_denoiser(pair: PairDenoiser, scale: float) -> Denoiser:
    """A plain ``denoise(x, t)`` that returns the guided prediction, for any sampler."""

    def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        cond, uncond = pair(x, t)
        return classifier_free_guidance(cond, uncond, scale)

    return denoise
