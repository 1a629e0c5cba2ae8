"""Generation: noise → images with any sampler, optionally class-guided, plus a denoising animation."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from PIL import Image

from ddpm.errors import UserError
from ddpm.imaging import make_image_grid
from ddpm.models.denoiser import model_denoiser, model_pair_denoiser
from ddpm.pipelines.loading import LoadedModel
from ddpm.runtime import progress_bar, resolve_precision
from ddpm.samplers import SamplerConfig, TrajectoryRecorder, guided_denoiser, sample


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
    class_labels: torch.Tensor | None = None,
    guidance: float | None = None,
    cond_image: torch.Tensor | None = None,
    animate: int = 0,
    frames: int = 40,
    progress: bool = True,
) -> Generation:
    """Draw ``num`` samples; ``seed`` fixes everything (same seed, same images, any batch size).

    Each image's starting noise and sampler noise come from a generator seeded by (seed, batch);
    ``animate`` > 0 records about ``frames`` frames of the first ``animate`` images (x_t over time).
    For a class-conditional model, ``class_labels`` (cycled over the ``num`` images) picks the
    classes and ``guidance`` the classifier-free guidance scale (default: the model's); without
    labels it samples the unconditional model.
    """
    sampler = sampler or loaded.config.sample
    c = loaded.config.model
    device = next(loaded.model.parameters()).device
    precision = resolve_precision(precision, device)
    labels = _labels_for(loaded, num, class_labels, guidance)
    _check_cond_image(loaded, num, cond_image)
    scale = sampler.guidance if guidance is None else guidance
    steps = sampler.steps or loaded.schedule.num_timesteps
    out, recorder = [], None
    batches = range(0, num, batch_size)
    for b, start in enumerate(progress_bar(batches, desc="sampling", enabled=progress and len(batches) > 1)):
        n = min(batch_size, num - start)
        g = torch.Generator().manual_seed(seed * 1_000_003 + b)
        x_T = torch.randn((n, c.in_channels, c.image_size, c.image_size), generator=g).to(device)
        if labels is not None:
            batch_labels = labels[start : start + n]
        elif loaded.config.model.num_classes:  # a class-conditional model sampled without labels
            batch_labels = torch.full((n,), loaded.model.null_class)
        else:
            batch_labels = None
        cond = None if cond_image is None else cond_image[start : start + n].to(device)
        denoise = _denoiser(loaded, precision, batch_labels, scale, cond)
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


def _labels_for(loaded: LoadedModel, num: int, class_labels, guidance) -> torch.Tensor | None:
    c = loaded.config.model.num_classes
    if not c:
        if class_labels is not None:
            raise UserError("this model was not trained with class labels; drop --class")
        if guidance is not None and guidance != 1.0:
            raise UserError("guidance needs a conditional model; this one is unconditional")
        return None
    if class_labels is None:
        return None
    class_labels = torch.as_tensor(class_labels, dtype=torch.long)
    if class_labels.min() < 0 or class_labels.max() >= c:
        raise UserError(f"class labels must be in 0 … {c - 1}")
    return class_labels.repeat((num + len(class_labels) - 1) // len(class_labels))[:num]


def _check_cond_image(loaded: LoadedModel, num: int, cond_image: torch.Tensor | None) -> None:
    c = loaded.config.model
    if cond_image is None and c.cond_channels:
        raise UserError("this model is conditioned on an image: give one")
    if cond_image is not None and not c.cond_channels:
        raise UserError("this model takes no conditioning image")
    if cond_image is not None and tuple(cond_image.shape) != (
        num,
        c.cond_channels,
        c.image_size,
        c.image_size,
    ):
        raise UserError(
            f"conditioning images must be {num}×{c.cond_channels}×{c.image_size}×{c.image_size}, "
            f"got {'×'.join(map(str, cond_image.shape))}"
        )


def _denoiser(loaded: LoadedModel, precision: str, labels, scale: float, cond: torch.Tensor | None = None):
    """The model as a denoiser: unconditional (no labels, or the "no label" index), or guided;
    ``cond`` is the conditioning image of an image-conditional model."""
    model = loaded.model
    extra = {} if cond is None else {"cond_image": cond}
    if labels is None:
        return model_denoiser(model, precision, **extra)
    labels = labels.to(next(model.parameters()).device)
    if scale == 1.0 or bool((labels == model.null_class).all()):
        return model_denoiser(model, precision, class_labels=labels, **extra)
    null = torch.full_like(labels, model.null_class)
    pair = model_pair_denoiser(
        model, {"class_labels": labels, **extra}, {"class_labels": null, **extra}, precision
    )
    return guided_denoiser(pair, scale)
