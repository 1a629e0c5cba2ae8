"""The order in which training reads images: a pure function of (seed, step)."""

from __future__ import annotations

import torch


def batch_indices(num_items: int, batch_size: int, step: int, seed: int) -> torch.Tensor:
    """Indices of training batch ``step``.

    Epoch e = step // (N // B) reads a permutation seeded by (seed, e), without replacement,
    dropping the last partial batch. Being a pure function, a resumed run reads exactly the
    batches an uninterrupted one would have.
    """
    per_epoch = num_items // batch_size
    if per_epoch == 0:
        raise ValueError(f"batch size {batch_size} exceeds the {num_items} images of the data set")
    epoch, within = divmod(step, per_epoch)
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(num_items, generator=g)
    return perm[within * batch_size : (within + 1) * batch_size]
