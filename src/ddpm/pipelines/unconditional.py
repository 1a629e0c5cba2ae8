"""Unconditional generation: noise → images with any sampler, plus a denoising animation."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from PIL import Image

from ddpm.imaging import make_image_grid
from ddpm.models.denoiser import model_denoiser
from ddpm.pipelines.loading import LoadedModel
from ddpm.runtime import progress_bar, resolve_precision
from ddpm.samplers import SamplerConfig, TrajectoryRecorder, sample


@dataclass
class Generation:
    """Generated images in [−1, 1] and, if asked for, animation frames of the first few."""

    images: torch.Tensor
    frames: list[Image.Image] = field(default_factory=list)


def generate(
    loaded: LoadedModel,
    num: int,
    *,
    seed: int = 0,
    sampler: SamplerConfig | None = None,
    batch_size: int = 64,
    precision: str = "auto",
    animate: int = 0,
    frames: int = 40,
    progress: bool = True,
) -> Generation:
    """Draw ``num`` samples; ``seed`` fixes everything (same seed, same images, any batch size).

    Each image's starting noise and sampler noise come from a generator seeded by (seed, batch);
    ``animate`` > 0 records about ``frames`` frames of the first ``animate`` images (x_t over time).
    """
    sampler = sampler or loaded.config.sample
    c = loaded.config.model
    device = next(loaded.model.parameters()).device
    precision = resolve_precision(precision, device)
    denoise = model_denoiser(loaded.model, precision)
    steps = sampler.steps or loaded.schedule.num_timesteps
    out, recorder = [], None
    batches = range(0, num, batch_size)
    for b, start in enumerate(progress_bar(batches, desc="sampling", enabled=progress and len(batches) > 1)):
        n = min(batch_size, num - start)
        g = torch.Generator().manual_seed(seed * 1_000_003 + b)
        x_T = torch.randn((n, c.in_channels, c.image_size, c.image_size), generator=g).to(device)
        callback = None
        if b == 0 and animate:
            recorder = callback = TrajectoryRecorder(every=max(1, steps // frames))
        x = sample(
            sampler,
            denoise,
            x_T,
            loaded.schedule,
            loaded.prediction_type,
            generator=g,
            callback=callback,
            progress=progress and len(batches) == 1,
        )
        out.append(x.float().cpu())
    images = torch.cat(out)
    result = Generation(images)
    if recorder is not None:
        k = min(animate, len(images))
        result.frames = [make_image_grid(xt[:k], nrow=k) for xt in recorder.xt]
        result.frames.append(make_image_grid(images[:k], nrow=k))
    return result
