"""Per-image random streams: image i of seed s draws all its noise from its own generator.

A sampler's noise argument is ``None`` (torch's global generator), one ``torch.Generator`` for the
whole batch, or a list of generators, one per image (row of x). With a list, image i's starting
noise and every per-step noise of a stochastic sampler come from generator i alone, so an image
does not depend on how many images are drawn with it or in which batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

Generators = torch.Generator | Sequence[torch.Generator] | None
"""One generator for the batch, one per image (row), or None for torch's global generator."""


def image_seed(seed: int, index: int) -> int:
    """The seed of image ``index`` under ``seed``: the first 64-bit word of NumPy's
    ``SeedSequence([seed mod 2⁶⁴, index])`` (a hash of both; distinct pairs give unrelated seeds)."""
    if index < 0:
        raise ValueError(f"image index must be ≥ 0, got {index}")
    words = np.random.SeedSequence([seed % 2**64, index]).generate_state(1, dtype=np.uint64)
    return int(words[0])


def image_generators(seed: int, start: int, count: int) -> list[torch.Generator]:
    """CPU generators of images ``start`` … ``start + count − 1``, each seeded by :func:`image_seed`."""
    return [torch.Generator().manual_seed(image_seed(seed, i)) for i in range(start, start + count)]


def randn(shape, generator: Generators = None, dtype=None, device=None) -> torch.Tensor:
    """N(0, I) of ``shape`` (B, …), drawn on the CPU and moved to ``device``; with a list of B
    generators, row b comes from generator b (the same values whatever B is)."""
    if generator is None or isinstance(generator, torch.Generator):
        out = torch.randn(shape, generator=generator, dtype=dtype)
    else:
        if len(generator) != shape[0]:
            raise ValueError(f"{len(generator)} generators for a batch of {shape[0]}; give one per image")
        rows = [torch.randn(tuple(shape[1:]), generator=g, dtype=dtype) for g in generator]
        out = torch.stack(rows) if rows else torch.empty(tuple(shape), dtype=dtype)
    return out.to(device) if device is not None else out


def randn_like(x: torch.Tensor, generator: Generators = None) -> torch.Tensor:
    """N(0, I) shaped like ``x`` (its dtype and device), one row per generator; see :func:`randn`."""
    return randn(x.shape, generator, dtype=x.dtype, device=x.device)
