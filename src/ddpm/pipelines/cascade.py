"""Cascaded generation (Ho et al. 2022): a low-resolution base model, then a super-resolution stage
conditioned on the base's upsampled output, noised at a chosen augmentation level."""

from __future__ import annotations

import torch

from ddpm.data.degradations import bicubic_upsample, noise_condition
from ddpm.errors import UserError
from ddpm.pipelines.generation import Generation, generate
from ddpm.pipelines.loading import LoadedModel
from ddpm.samplers import SamplerConfig


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
    factor = check_cascade(base, sr)
    low = generate(
        base, num, seed=seed, sampler=base_sampler, batch_size=batch_size, progress=progress, **conditions
    ).images
    level = 0.5 * sr.config.data.cond_augment if aug_level is None else aug_level
    if not sr.config.model.aug_level and level:
        raise UserError("this SR stage was trained without conditioning augmentation; use aug_level 0")
    eps = torch.randn(
        low.shape[0],
        low.shape[1],
        *[d * factor for d in low.shape[2:]],
        generator=torch.Generator().manual_seed(seed + 7),
    )
    y = noise_condition(bicubic_upsample(low, factor), torch.full((num,), float(level)), eps)
    high = generate(
        sr,
        num,
        seed=seed + 1,
        sampler=sr_sampler,
        batch_size=batch_size,
        cond_image=y,
        aug_level=level if sr.config.model.aug_level else None,
        progress=progress,
    )
    return high, low
