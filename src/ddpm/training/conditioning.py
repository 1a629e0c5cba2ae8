"""What the network is conditioned on while training, and dropping it for classifier-free guidance."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ddpm.errors import UserError


@dataclass
class Conditioning:
    """Per-image class labels (N,) of a training set, or none.

    Each batch replaces a label by the "no label" index with probability ``drop_prob``, so the one
    network also learns the unconditional model that classifier-free guidance needs
    (Ho & Salimans 2022, Alg. 1).
    """

    labels: torch.Tensor | None = None
    num_classes: int = 0
    drop_prob: float = 0.0

    def __post_init__(self) -> None:
        if self.num_classes and self.labels is None:
            raise UserError(
                "model.num_classes is set but the data set has no labels; use a labelled data set"
            )
        if self.labels is not None and self.num_classes:
            lo, hi = int(self.labels.min()), int(self.labels.max())
            if lo < 0 or hi >= self.num_classes:
                raise UserError(
                    f"labels run from {lo} to {hi}, outside model.num_classes = {self.num_classes}"
                )
        if not 0 <= self.drop_prob < 1:
            raise UserError(f"train.cond_drop_prob must be in [0, 1), got {self.drop_prob}")

    @property
    def active(self) -> bool:
        return self.num_classes > 0

    def batch(self, idx: torch.Tensor, generator: torch.Generator, device: torch.device) -> dict:
        """Model keyword arguments for the images ``idx``, with labels dropped at the configured rate."""
        if not self.active:
            return {}
        labels = self.labels[idx].clone()
        drop = torch.rand(len(labels), generator=generator) < self.drop_prob
        labels[drop] = self.num_classes
        return {"class_labels": labels.to(device)}
