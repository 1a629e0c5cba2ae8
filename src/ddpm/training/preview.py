"""The sample grids a training run writes as it goes (from the EMA weights, fixed noise)."""

from __future__ import annotations

from dataclasses import replace

import torch

from ddpm.imaging import to_model_range
from ddpm.models.denoiser import model_denoiser, model_pair_denoiser
from ddpm.models.embeddings import null_label
from ddpm.samplers import SamplerConfig, guided_denoiser, sample
from ddpm.schedules import NoiseSchedule
from ddpm.training.conditioning import Conditioning
from ddpm.training.objective import regression_output


@torch.no_grad()
def preview(
    model,
    schedule: NoiseSchedule,
    prediction_type: str,
    sampler: SamplerConfig,
    conditioning: Conditioning,
    images: torch.Tensor,
    noise: torch.Tensor,
    seed: int,
    precision: str = "fp32",
    channels_last: bool = False,
    regression: bool = False,
) -> tuple[torch.Tensor, int | None]:
    """(images, images per row) of a preview grid.

    Unconditional: one sample per noise. Class-conditional: classes 0, 1, … along each row, with the
    configured guidance. Text-conditional: the first training captions, guided. Image-conditional:
    (condition, sample, truth) triplets for the first training images. With ``regression`` the
    model is the non-diffusion baseline: its answer is one network pass (no sampler, noise unused
    but for its shape).
    """
    device = noise.device
    kwargs, nrow = {}, None
    if conditioning.image is not None:
        truth = to_model_range(images[: len(noise)]).to(device)
        kwargs = {
            k: v.to(device)
            for k, v in conditioning.image(truth, torch.Generator().manual_seed(seed + 3)).items()
        }
        cond = kwargs["cond_image"]
    denoise = model_denoiser(model, precision, channels_last, **kwargs)
    if conditioning.text is not None:
        t, n = conditioning.text, len(noise)
        cond = {"context": t.states[:n].to(device), "context_mask": t.mask[:n].to(device), **kwargs}
        null = {
            "context": t.null_states.expand(n, -1, -1).to(device),
            "context_mask": t.null_mask.expand(n, -1).to(device),
            **kwargs,
        }
        pair = model_pair_denoiser(model, cond, null, precision, channels_last)
        denoise = guided_denoiser(pair, sampler.guidance)
    if conditioning.active:
        c = conditioning.num_classes
        labels = torch.arange(len(noise), device=device) % c
        pair = model_pair_denoiser(
            model,
            {"class_labels": labels, **kwargs},
            {"class_labels": torch.full_like(labels, null_label(c)), **kwargs},
            precision,
            channels_last,
        )
        denoise, nrow = guided_denoiser(pair, sampler.guidance), c
    if regression:
        x = regression_output(denoise, noise)
    else:
        generator = torch.Generator().manual_seed(seed)
        x = sample(sampler, denoise, noise, schedule, prediction_type, generator=generator)
    if conditioning.image is not None:
        channels = x.shape[1]
        x = torch.stack([cond[:, :channels], x, truth], dim=1).flatten(0, 1)
        nrow = 3
    return x, nrow


def preview_sampler(sampler: SamplerConfig, steps: int, num_timesteps: int) -> SamplerConfig:
    """The model's sampler with at most ``steps`` steps, for quick previews."""
    return replace(sampler, steps=min(steps, num_timesteps))
