"""Cascaded generation (Ho et al. 2022): a low-resolution base model, then a super-resolution stage
conditioned on the base's upsampled output, noised at a chosen augmentation level."""

from __future__ import annotations

import torch

from ddpm.data.degradations import bicubic_upsample, noise_condition
from ddpm.errors import UserError
from ddpm.pipelines.generation import Generation, generate
from ddpm.pipelines.loading import LoadedModel
from ddpm.samplers import SamplerConfig
from ddpm.samplers.noise import image_generators, randn


def check_cascade(base: LoadedModel, sr: LoadedModel) -> int:
    """The upsampling factor from the base to the SR stage; mismatched stages are errors."""
    b, s = base.config.model, sr.config.model
    task = sr.config.data.task
    if task not in ("sr2", "sr4"):
        raise UserError(
            f"the second stage must be a super-resolution model (data.task sr2/sr4), not {task!r}"
        )
    factor = int(task[-1])
    if b.image_size * factor != s.image_size:
        raise UserError(
            f"the base makes {b.image_size}×{b.image_size} images; the {task} stage needs "
            f"{s.image_size // factor}×{s.image_size // factor}"
        )
    if b.in_channels != s.in_channels or b.cond_channels:
        raise UserError("the base must be an unconditional-image model with the SR stage's channels")
    return factor


def generate_cascade(
    base: LoadedModel,
    sr: LoadedModel,
    num: int,
    *,
    seed: int = 0,
    aug_level: float | None = None,
    base_sampler: SamplerConfig | None = None,
    sr_sampler: SamplerConfig | None = None,
    batch_size: int = 64,
    progress: bool = True,
    **conditions,
) -> tuple[Generation, torch.Tensor]:
    """(final images, base images): base samples, upsampled bicubically, noised to ``aug_level``
    (default: half the SR stage's training maximum), then super-resolved."""
    check_cascade(base, sr)
    augment_level(sr, aug_level)  # fail before the base stage runs
    low = generate(
        base, num, seed=seed, sampler=base_sampler, batch_size=batch_size, progress=progress, **conditions
    ).images
    high = super_resolve(
        sr, low, level=aug_level, seed=seed, sampler=sr_sampler, batch_size=batch_size, progress=progress
    )
    return high, low


def super_resolve(
    sr: LoadedModel,
    low: torch.Tensor,
    *,
    level: float | None = None,
    seed: int = 0,
    sampler: SamplerConfig | None = None,
    batch_size: int = 64,
    progress: bool = True,
) -> Generation:
    """The SR stage on low-resolution images: bicubic ×factor, noised to y_s = √(1 − s²) y + s ε at
    ``level`` s (default: half the stage's training maximum, Ho et al. §3.2), then x ~ p(x | y_s)."""
    factor = int(sr.config.data.task[-1])
    level = augment_level(sr, level)
    num = low.shape[0]
    shape = (num, low.shape[1], *[d * factor for d in low.shape[2:]])
    eps = randn(shape, image_generators(seed + 7, 0, num))  # image i's augmentation noise: (seed, i)
    y = noise_condition(bicubic_upsample(low, factor), torch.full((num,), float(level)), eps)
    return generate(
        sr,
        num,
        seed=seed + 1,
        sampler=sampler,
        batch_size=batch_size,
        cond_image=y,
        aug_level=level if sr.config.model.aug_level else None,
        progress=progress,
    )


def augment_level(sr: LoadedModel, level: float | None) -> float:
    """The conditioning-augmentation level s to sample at: ``level``, or by default half the stage's
    training maximum; a non-zero level for a stage trained without augmentation is an error."""
    level = 0.5 * sr.config.data.cond_augment if level is None else float(level)
    if not sr.config.model.aug_level and level:
        raise UserError("this SR stage was trained without conditioning augmentation; use aug_level 0")
    if not 0 <= level < 1:
        raise UserError(f"the augmentation level must be in [0, 1), got {level}")
    return level
