"""Pairs of one garment: a data set whose global consistency can be checked exactly.

Each image is a strip of height S and width 4S holding two copies of the same S×S Fashion-MNIST
garment, in the first and in the last S columns, with 2S blank columns between them (centres 3S
apart). A generator that sees the whole strip draws a matching pair ("both shoes the same pair");
one whose receptive field is narrower than the gap draws each half on its own.
"""

from __future__ import annotations

import torch

from ddpm.data.dataset import ImageDataset

PAIR_WIDTH_FACTOR = 4  # width of a strip in garment widths


def garment_pairs(garments: ImageDataset) -> ImageDataset:
    """(N, C, S, 4S) strips from square (N, C, S, S) ``garments``: copy, blank gap, copy."""
    images = garments.images
    n, c, s, w = images.shape
    if s != w:
        raise ValueError(f"garments must be square, got {s}×{w}")
    strip = torch.zeros(n, c, s, PAIR_WIDTH_FACTOR * s, dtype=images.dtype)
    strip[..., :s] = images
    strip[..., -s:] = images
    return ImageDataset(
        images=strip,
        labels=garments.labels,
        class_names=garments.class_names,
        name=garments.name.replace("fashion-mnist", "fashion-mnist-pairs"),
    )


def pair_halves(strips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two garment squares (first and last H columns) of (N, C, H, W) strips."""
    s = strips.shape[-2]
    return strips[..., :s], strips[..., -s:]
