"""A per-pixel classifier over feature vectors: an ensemble of small MLPs (Baranchuk et al. 2022,
Sec. 3: Linear → ReLU → BatchNorm twice, then a linear layer to the classes).

Features are standardised by the training set's per-channel mean and standard deviation (stored
as buffers), so blocks whose activations differ in scale weigh alike. The ensemble's prediction is
the mean of its members' class probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class PixelHeadConfig:
    """Shape of the per-pixel MLP ensemble."""

    in_features: int = field(default=0, metadata={"help": "length of one pixel's feature vector"})
    num_classes: int = field(default=0, metadata={"help": "number of classes (parts)"})
    hidden: tuple[int, ...] = field(default=(256, 128), metadata={"help": "hidden layer widths"})
    members: int = field(default=3, metadata={"help": "independently trained MLPs averaged"})

    def __post_init__(self) -> None:
        self.hidden = tuple(self.hidden)
        if self.in_features < 1 or self.num_classes < 2:
            raise ValueError("a pixel head needs in_features ≥ 1 and num_classes ≥ 2")
        if self.members < 1 or not self.hidden or min(self.hidden) < 1:
            raise ValueError("a pixel head needs members ≥ 1 and positive hidden widths")


def pixel_mlp(in_features: int, hidden: tuple[int, ...], num_classes: int) -> nn.Sequential:
    """One member: (Linear → ReLU → BatchNorm1d) per hidden width, then Linear to class logits."""
    layers: list[nn.Module] = []
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU(), nn.BatchNorm1d(h)]
        width = h
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


class PixelClassifier(nn.Module):
    """Feature vectors (N, D) → per-member logits (members, N, K); :meth:`probabilities` averages."""

    def __init__(self, config: PixelHeadConfig):
        super().__init__()
        self.config = c = config
        self.register_buffer("feature_mean", torch.zeros(c.in_features))
        self.register_buffer("feature_std", torch.ones(c.in_features))
        self.members = nn.ModuleList(
            pixel_mlp(c.in_features, c.hidden, c.num_classes) for _ in range(c.members)
        )

    def set_normalisation(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store the training features' per-channel statistics (std floored to avoid dividing by 0)."""
        self.feature_mean.copy_(mean)
        self.feature_std.copy_(std.clamp_min(1e-6))

    def standardise(self, features: torch.Tensor) -> torch.Tensor:
        return (features.float() - self.feature_mean) / self.feature_std

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        z = self.standardise(features)
        return torch.stack([m(z) for m in self.members])

    @torch.no_grad()
    def probabilities(self, features: torch.Tensor) -> torch.Tensor:
        """(N, K) mean of the members' softmax probabilities."""
        return self.forward(features).softmax(-1).mean(0)
