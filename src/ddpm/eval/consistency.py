"""The receptive-field judge: is a generated pair of garments one garment drawn twice?

A strip of :mod:`ddpm.data.pairs` is consistent when a classifier gives both halves the same class
and the halves are far closer to each other than two garments drawn at random are: their RMS
distance is below ``ratio`` × the median RMS distance of random pairs of real garments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


def rms_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N,) root-mean-square difference of images a and b (N, C, H, W) in [−1, 1]."""
    return (a.float() - b.float()).pow(2).flatten(1).mean(1).sqrt()


def random_pair_distance(garments: torch.Tensor, num: int = 2000, seed: int = 0) -> float:
    """Median :func:`rms_distance` of ``num`` random pairs of distinct ``garments`` (N, C, H, W)."""
    g = torch.Generator().manual_seed(seed)
    i = torch.randint(0, len(garments), (num,), generator=g)
    j = (i + torch.randint(1, len(garments), (num,), generator=g)) % len(garments)
    return float(rms_distance(garments[i], garments[j]).median())


@dataclass
class ConsistencyReport:
    """Per strip: both halves' classes, their distance, and the verdict; plus the rates."""

    left_class: torch.Tensor
    right_class: torch.Tensor
    distance: torch.Tensor
    consistent: torch.Tensor
    threshold: float

    @property
    def rate(self) -> float:
        """Share of consistent strips."""
        return float(self.consistent.float().mean())

    @property
    def same_class_rate(self) -> float:
        return float((self.left_class == self.right_class).float().mean())

    def summary(self) -> dict:
        return {
            "consistency_rate": self.rate,
            "same_class_rate": self.same_class_rate,
            "median_distance": float(self.distance.median()),
            "threshold": self.threshold,
            "num": len(self.distance),
        }


def judge_pairs(
    left: torch.Tensor,
    right: torch.Tensor,
    classify: Callable[[torch.Tensor], torch.Tensor],
    reference_distance: float,
    ratio: float = 0.5,
) -> ConsistencyReport:
    """Judge pairs of halves (N, C, S, S) in [−1, 1]: ``classify(images) -> (N,) class ids``; a pair is
    consistent when both classes agree and ``rms_distance < ratio × reference_distance`` (the
    median distance of random real pairs, :func:`random_pair_distance`)."""
    if left.shape != right.shape:
        raise ValueError(f"halves differ in shape: {tuple(left.shape)} and {tuple(right.shape)}")
    a, b = classify(left), classify(right)
    distance = rms_distance(left, right)
    threshold = ratio * reference_distance
    return ConsistencyReport(
        left_class=a,
        right_class=b,
        distance=distance,
        consistent=(a == b) & (distance < threshold),
        threshold=threshold,
    )
