"""Latent diffusion (Rombach et al. 2022): a diffusion model over the scaled latents of a frozen
autoencoder. Only this pipeline encodes and decodes; samplers, guidance and evaluation see an
ordinary diffusion model, and :func:`ddpm.pipelines.generate` decodes what it samples."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ddpm.data import DataConfig
from ddpm.errors import UserError
from ddpm.imaging import to_model_range
from ddpm.models import UNetConfig
from ddpm.pipelines.autoencoders import LoadedAutoencoder, load_autoencoder
from ddpm.runtime import progress_bar
from ddpm.training.examples import CachedLatents, OnTheFlyLatents
from ddpm.validation import require_choice, require_positive_int

ENCODINGS = ("cache", "on-the-fly")


@dataclass
class LatentConfig:
    """Where a diffusion model lives: pixel space (no autoencoder) or an autoencoder's latent space."""

    autoencoder: str = field(
        default="",
        metadata={
            "help": "autoencoder (pretrained name, checkpoint or run folder) to diffuse the latents of; "
            "empty = pixel space"
        },
    )
    encode: str = field(
        default="cache",
        metadata={"help": "cache: encode the training images once; on-the-fly: encode every batch"},
    )
    encode_batch_size: int = field(default=128, metadata={"help": "images per encoder pass"})

    def __post_init__(self) -> None:
        require_choice("encode", self.encode, ENCODINGS)
        require_positive_int("encode_batch_size", self.encode_batch_size)


LATENT_CLIP_ERROR = (
    "clamping x̂_0 to [−1, 1] is for pixels; scaled latents are not bounded: "
    "set sample.clip_x0 = false and sample.dynamic_threshold = 0 for a latent model"
)


def check_latent_sampler(sampler) -> None:
    """A latent model's sampler must not clamp x̂_0 (static or dynamic thresholding)."""
    if sampler.clip_x0 or sampler.dynamic_threshold > 0:
        raise UserError(LATENT_CLIP_ERROR)


def check_latent_shapes(coder: LoadedAutoencoder, model: UNetConfig, data: DataConfig) -> None:
    """The data must be what the autoencoder was trained on, the U-Net as large as its latents."""
    a = coder.config
    if data.image_size != a.image_size:
        raise UserError(
            f"data.image_size is {data.image_size} but the autoencoder {coder.source} was trained on "
            f"{a.image_size}×{a.image_size} images; set data.image_size = {a.image_size}"
        )
    if (model.in_channels, model.image_size) != (a.latent_channels, a.latent_size):
        raise UserError(
            f"the autoencoder's latents are {a.latent_channels}×{a.latent_size}×{a.latent_size}; set "
            f"model.in_channels = {a.latent_channels} and model.image_size = {a.latent_size} "
            f"(now {model.in_channels} and {model.image_size})"
        )


def posterior_encoder(coder: LoadedAutoencoder):
    """``encode(x) -> (μ, σ)`` of q(z | x) for images in [−1, 1], without gradients, on the CPU."""
    device = next(coder.model.parameters()).device

    @torch.no_grad()
    def encode(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q = coder.model.encode(x.to(device))
        return q.mean.float().cpu(), q.std.float().cpu()

    return encode


def encode_posteriors(
    coder: LoadedAutoencoder, images: torch.Tensor, batch_size: int = 128, progress: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """(μ, σ) of q(z | x) for every uint8 image, encoded in batches."""
    encode = posterior_encoder(coder)
    means, stds = [], []
    starts = range(0, len(images), batch_size)
    for start in progress_bar(starts, desc="encoding latents", enabled=progress and len(starts) > 1):
        mean, std = encode(to_model_range(images[start : start + batch_size]))
        means.append(mean)
        stds.append(std)
    return torch.cat(means), torch.cat(stds)


def latent_examples(
    config: LatentConfig, coder: LoadedAutoencoder, images: torch.Tensor, progress: bool = True
):
    """The training examples of a latent model: cached posteriors or on-the-fly encoding."""
    a = coder.config
    if config.encode == "cache":
        mean, std = encode_posteriors(coder, images, config.encode_batch_size, progress)
        return CachedLatents(mean, std, coder.scale_factor, coder.decode_latents)
    shape = (a.latent_channels, a.latent_size, a.latent_size)
    return OnTheFlyLatents(images, posterior_encoder(coder), shape, coder.scale_factor, coder.decode_latents)


def checked_autoencoder(config: LatentConfig, model: UNetConfig, data: DataConfig, device: str = "cpu"):
    """The frozen autoencoder a latent model is configured for, loaded and checked against the
    data and the U-Net (before any data are read)."""
    coder = load_autoencoder(config.autoencoder, device)
    check_latent_shapes(coder, model, data)
    return coder
