"""Training images decoded from disk as training reads them (data sets larger than memory).

``DataLoader`` workers run ahead of the training loop: a batch sampler walks the same batch order
as the in-memory path (:func:`~ddpm.training.batches.batch_indices`, a function of seed and step),
from the step the run starts or resumes at, and hands each worker this process's share of a batch
only. The loop receives a full-size batch whose other processes' rows are zero, so every random draw
of a step (t, ε, flips, label drops) is made for the whole batch exactly as one process would.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ddpm.imaging import to_model_range
from ddpm.training.batches import batch_indices


class _StepShares(Sampler):
    """For steps ``first`` … ``last − 1``: this process's share of each batch's indices."""

    def __init__(self, num_items: int, batch_size: int, seed: int, first: int, last: int, share: slice):
        self.n, self.batch_size, self.seed = num_items, batch_size, seed
        self.first, self.last, self.share = first, last, share

    def __iter__(self):
        for step in range(self.first, self.last):
            yield batch_indices(self.n, self.batch_size, step, self.seed)[self.share].tolist()

    def __len__(self) -> int:
        return max(0, self.last - self.first)


class _Indexed(Dataset):
    def __init__(self, images: Dataset):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return i, self.images[i]


def _collate(items):
    indices, images = zip(*items, strict=True)
    return torch.tensor(indices), torch.stack(images)


class StreamedExamples:
    """uint8 images of a map-style data set (item i → (C, H, W)), served in [−1, 1]; call
    :meth:`start` before the first batch."""

    decode = None

    def __init__(self, images: Dataset, workers: int = 2, prefetch: int = 4):
        self.images, self.workers, self.prefetch = images, workers, prefetch
        self._shape = tuple(images[0].shape)
        self._batches = None
        self._share = slice(None)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    def start(self, first_step: int, last_step: int, batch_size: int, seed: int, share: slice) -> None:
        """Begin reading ahead from batch ``first_step`` (a new or resumed run) to ``last_step``."""
        self.close()
        self._share = share
        sampler = _StepShares(len(self.images), batch_size, seed, first_step, last_step, share)
        options = {"prefetch_factor": self.prefetch} if self.workers else {}
        loader = DataLoader(
            _Indexed(self.images),
            batch_sampler=sampler,
            num_workers=self.workers,
            collate_fn=_collate,
            **options,
        )
        self._batches = iter(loader)

    def batch(self, indices: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        mine = indices[self._share]
        got = next(self._batches, None) if self._batches is not None else None
        if got is None or not torch.equal(got[0], mine):  # not started, or read elsewhere: read now
            images = torch.stack([self.images[int(i)] for i in mine]) if len(mine) else None
        else:
            images = got[1]
        full = torch.zeros((len(indices), *self._shape), dtype=torch.uint8)
        if images is not None:
            full[self._share] = images
        return to_model_range(full)

    def close(self) -> None:
        """Stop the workers (they also stop when the loader is dropped)."""
        self._batches = None
