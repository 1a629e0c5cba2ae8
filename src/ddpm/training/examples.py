"""What a training step reads: images in pixel space, or the latents of a frozen autoencoder
(latent diffusion, Rombach et al. 2022), behind one interface: ``batch(indices, generator)``."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ddpm.imaging import to_model_range

Decode = Callable[[torch.Tensor], torch.Tensor]  # scaled latents → images in [−1, 1]
Encode = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]  # images → posterior (μ, σ)


class PixelExamples:
    """uint8 images (N, C, H, W), served in [−1, 1]."""

    decode: Decode | None = None

    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape[1:])

    def batch(self, indices: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return to_model_range(self.images[indices])


def scaled_posterior_sample(
    mean: torch.Tensor, std: torch.Tensor, scale_factor: float, generator: torch.Generator
) -> torch.Tensor:
    """x_0 = s · z with z = μ + σ ε ~ q(z | x): a fresh draw from the posterior at every visit,
    scaled by the autoencoder's factor s so that x_0 has about unit variance."""
    eps = torch.randn(mean.shape, generator=generator)
    return scale_factor * (mean + std * eps)


class CachedLatents:
    """The posterior (μ, σ) of every training image, encoded once before training; each batch
    still draws z ~ q(z | x) anew, so it sees what encoding on the fly would give."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, scale_factor: float, decode: Decode):
        self.mean, self.std, self.scale_factor, self.decode = mean, std, scale_factor, decode

    def __len__(self) -> int:
        return len(self.mean)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.mean.shape[1:])

    def batch(self, indices: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return scaled_posterior_sample(self.mean[indices], self.std[indices], self.scale_factor, generator)


class OnTheFlyLatents:
    """uint8 images encoded batch by batch as training reads them (no memory for a cache, one
    encoder pass per image per visit)."""

    def __init__(
        self,
        images: torch.Tensor,
        encode: Encode,
        latent_shape: tuple[int, ...],
        scale_factor: float,
        decode: Decode,
    ):
        self.images, self.encode, self.scale_factor, self.decode = images, encode, scale_factor, decode
        self._shape = tuple(latent_shape)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    def batch(self, indices: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        mean, std = self.encode(to_model_range(self.images[indices]))
        return scaled_posterior_sample(mean, std, self.scale_factor, generator)
