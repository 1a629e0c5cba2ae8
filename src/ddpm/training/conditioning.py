"""What the network is conditioned on while training, and dropping it for classifier-free guidance."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ddpm.errors import UserError
from ddpm.models.embeddings import null_label

ImageCondition = Callable[[torch.Tensor, torch.Generator], dict]
"""``make(x0, generator) -> {"cond_image": …[, "aug_level": …]}``: the image a batch is conditioned on,
made from the batch (a degradation: low resolution, masked, grey, JPEG…), concatenated to x_t by the
network, and the noise level it was augmented with, if any."""


@dataclass(kw_only=True)
class TextContext:
    """Token states (N, T, D) and padding masks (N, T) of every training caption, and those of the
    empty caption, which stands for "no caption" under classifier-free guidance."""

    states: torch.Tensor
    mask: torch.Tensor
    null_states: torch.Tensor
    null_mask: torch.Tensor


@dataclass(kw_only=True)
class Conditioning:
    """Per-image class labels (N,) or caption states of a training set, and/or an image made from
    each batch.

    Each batch replaces a label (caption) by the "no label" index, :func:`null_label` (the empty
    caption), with probability ``drop_prob``, so the one network also learns the unconditional model
    that classifier-free guidance needs (Ho & Salimans 2022, Alg. 1).
    """

    labels: torch.Tensor | None = None
    num_classes: int = 0
    drop_prob: float = 0.0
    image: ImageCondition | None = None
    text: TextContext | None = None

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
        """Whether the model takes class labels."""
        return self.num_classes > 0

    def batch(self, idx: torch.Tensor, x0: torch.Tensor, generator: torch.Generator, device) -> dict:
        """Model keyword arguments for the images ``idx`` (batch ``x0``), labels dropped at the set rate."""
        out = {}
        if self.image is not None:
            out.update({k: v.to(device) for k, v in self.image(x0, generator).items()})
        if self.active:
            labels = self.labels[idx].clone()
            drop = torch.rand(len(labels), generator=generator) < self.drop_prob
            labels[drop] = null_label(self.num_classes)
            out["class_labels"] = labels.to(device)
        if self.text is not None:
            t = self.text
            drop = (torch.rand(len(idx), generator=generator) < self.drop_prob)[:, None]
            states = torch.where(drop[..., None], t.null_states, t.states[idx])
            mask = torch.where(drop, t.null_mask, t.mask[idx])
            out["context"], out["context_mask"] = states.to(device), mask.to(device)
        return out
