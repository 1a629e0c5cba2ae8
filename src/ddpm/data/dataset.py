"""An in-memory image data set: uint8 (N, C, H, W) images with optional labels."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(kw_only=True)
class ImageDataset:
    """Images as uint8 (N, C, H, W) with optional integer labels (N,) and their class names, or captions."""

    images: torch.Tensor
    labels: torch.Tensor | None = None
    class_names: tuple[str, ...] = ()
    name: str = ""
    captions: list[str] | None = None

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError("images must be a uint8 tensor of shape (N, C, H, W)")
        if self.labels is not None and len(self.labels) != len(self.images):
            raise ValueError("labels and images differ in length")
        if self.captions is not None and len(self.captions) != len(self.images):
            raise ValueError("captions and images differ in length")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def image_size(self) -> int:
        return self.images.shape[-1]
