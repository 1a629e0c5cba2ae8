"""Generation: noise → images with any sampler, optionally guided by a class or a prompt, or
conditioned on an image, plus a denoising animation."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from PIL import Image

from ddpm.errors import UserError
from ddpm.imaging import make_image_grid
from ddpm.models.denoiser import model_denoiser, model_pair_denoiser
from ddpm.pipelines.distillation import check_student_sampler
from ddpm.pipelines.latent import check_latent_sampler
from ddpm.pipelines.loading import LoadedModel
from ddpm.runtime import compiled, progress_bar, resolve_compile, resolve_precision
from ddpm.samplers import SamplerConfig, TrajectoryRecorder, guided_denoiser, image_generators, randn, sample
from ddpm.samplers.common import StepCallback


@dataclass
class Generation:
    """Generated images in [−1, 1] and, if asked for, animation frames of the first few."""

    images: torch.Tensor
    frames: list[Image.Image] = field(default_factory=list)


@dataclass
class _Inputs:
    """Per-image conditional inputs and their "nothing" counterparts (for guidance), full length."""

    cond: dict = field(default_factory=dict)
    null: dict = field(default_factory=dict)
    shared: dict = field(default_factory=dict)  # the same in both branches (a conditioning image)

    def batch(self, start: int, n: int, device) -> tuple[dict, dict]:
        def cut(d):
            return {k: v[start : start + n].to(device) for k, v in d.items()}

        shared = cut(self.shared)
        return {**cut(self.cond), **shared}, {**cut(self.null), **shared}


def generate(
    loaded: LoadedModel,
    num: int,
    *,
    seed: int = 0,
    sampler: SamplerConfig | None = None,
    batch_size: int = 64,
    precision: str = "auto",
    compile: str = "auto",
    class_labels: torch.Tensor | None = None,
    prompts: list[str] | None = None,
    guidance: float | None = None,
    cond_image: torch.Tensor | None = None,
    aug_level: float | None = None,
    animate: int = 0,
    frames: int = 40,
    on_step: StepCallback | None = None,
    progress: bool = True,
) -> Generation:
    """Draw ``num`` samples; image i depends only on (``seed``, i), not on ``num`` or ``batch_size``.

    Image i's starting noise and every per-step noise of a stochastic sampler come from its own
    generator, seeded by :func:`ddpm.samplers.image_seed` (seed, i). (Batch sizes change only the
    network's own rounding: float32 matrix products may differ in the last bits between batch sizes.)
    ``animate`` > 0 records about ``frames`` frames of the first ``animate`` images (x_t over time).
    A class-conditional model takes ``class_labels``, a text-conditional one ``prompts`` (both cycled
    over the images); ``guidance`` is the classifier-free guidance scale (default: the model's), and
    without labels or prompts the unconditional model is sampled. An image-conditional model needs
    ``cond_image`` (num, cond_channels, H, W) in [−1, 1], e.g. from :func:`ddpm.data.task_condition`;
    a cascade SR stage also takes the noise level ``aug_level`` the image was augmented with (default 0).
    ``precision`` and ``compile`` are as in :func:`ddpm.runtime.resolve_precision` / ``resolve_compile``.
    ``on_step(i, t, x_t, x̂_0)`` is called at every step of the first batch (a live preview; for a
    latent model x_t and x̂_0 are latents).
    A latent model samples latents and returns them decoded by its autoencoder (animation frames too).
    """
    sampler = sampler or loaded.config.sample
    check_student_sampler(loaded, sampler)
    if loaded.autoencoder is not None:
        check_latent_sampler(sampler)
    c = loaded.config.model
    device = next(loaded.model.parameters()).device
    precision = resolve_precision(precision, device)
    network = compiled(loaded.model, resolve_compile(compile, device))
    inputs, guided = _inputs(loaded, num, class_labels, prompts, guidance, cond_image)
    if c.aug_level:
        inputs.shared["aug_level"] = torch.full((num,), float(aug_level or 0.0))
    elif aug_level is not None:
        raise UserError("this model takes no augmentation level (it is not a cascade SR stage)")
    scale = sampler.guidance if guidance is None else guidance
    steps = sampler.steps or loaded.schedule.num_timesteps
    out, recorder = [], None
    batches = range(0, num, batch_size)
    for b, start in enumerate(progress_bar(batches, desc="sampling", enabled=progress and len(batches) > 1)):
        n = min(batch_size, num - start)
        g = image_generators(seed, start, n)
        x_T = randn((n, c.in_channels, c.image_size, c.width), g, device=device)
        cond, null = inputs.batch(start, n, device)
        if guided and scale not in (0.0, 1.0):
            denoise = guided_denoiser(model_pair_denoiser(network, cond, null, precision), scale)
        else:  # w = 1 is the conditional model alone, w = 0 the unconditional one: one call each
            denoise = model_denoiser(network, precision, **(cond if guided and scale else null))
        callback = None
        if b == 0 and animate:
            recorder = callback = TrajectoryRecorder(every=max(1, steps // frames))
        if b == 0 and on_step is not None:
            callback = _both(callback, on_step)
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
    coder = loaded.autoencoder
    if coder is not None:  # a latent model: decode z = x / s to images
        images = torch.cat(
            [coder.decode_latents(images[i : i + batch_size]) for i in range(0, num, batch_size)]
        )
    result = Generation(images=images)
    if recorder is not None:
        k = min(animate, len(images))
        shown = [xt[:k] if coder is None else coder.decode_latents(xt[:k]) for xt in recorder.xt]
        result.frames = [make_image_grid(x, nrow=k) for x in shown]
        result.frames.append(make_image_grid(images[:k], nrow=k))
    return result


def _both(first: StepCallback | None, second: StepCallback) -> StepCallback:
    if first is None:
        return second

    def call(i, t, xt, x0):
        first(i, t, xt, x0)
        second(i, t, xt, x0)

    return call


def _cycle(values: torch.Tensor, num: int) -> torch.Tensor:
    return values.repeat((num + len(values) - 1) // len(values), *[1] * (values.ndim - 1))[:num]


def _inputs(
    loaded: LoadedModel, num: int, class_labels, prompts, guidance, cond_image
) -> tuple[_Inputs, bool]:
    """The model's keyword inputs for every image, and whether a condition was given (to guide by)."""
    c = loaded.config.model
    inputs, guided = _Inputs(), False
    if class_labels is not None and not c.num_classes:
        raise UserError("this model was not trained with class labels; drop --class")
    if prompts is not None and not c.context_dim:
        raise UserError("this model was not trained with captions; drop --prompt")
    if c.num_classes:
        null = torch.full((num,), loaded.model.null_class)
        labels = null
        if class_labels is not None:
            labels = torch.as_tensor(class_labels, dtype=torch.long)
            if len(labels) == 0 or labels.min() < 0 or labels.max() >= c.num_classes:
                raise UserError(f"class labels must be in 0 … {c.num_classes - 1}")
            labels, guided = _cycle(labels, num), True
        inputs.cond["class_labels"], inputs.null["class_labels"] = labels, null
    if c.context_dim:
        from ddpm.models.text_encoder import TextEncoder

        max_length = loaded.meta.get("text_encoder", {}).get("max_length", 32)
        encoder = TextEncoder(max_length)
        null_states, null_mask = encoder([""])
        states, mask = null_states.expand(num, -1, -1), null_mask.expand(num, -1)
        if prompts:
            s, m = encoder(list(prompts))
            states, mask, guided = _cycle(s, num), _cycle(m, num), True
        inputs.cond.update(context=states, context_mask=mask)
        inputs.null.update(context=null_states.expand(num, -1, -1), context_mask=null_mask.expand(num, -1))
    if not (c.num_classes or c.context_dim) and guidance is not None and guidance != 1.0:
        raise UserError("guidance needs a conditional model; this one is unconditional")
    if cond_image is None and c.cond_channels:
        raise UserError("this model is conditioned on an image: give one")
    if cond_image is not None and not c.cond_channels:
        raise UserError("this model takes no conditioning image")
    if cond_image is not None:
        want = (num, c.cond_channels, c.image_size, c.width)
        if tuple(cond_image.shape) != want:
            got = "×".join(map(str, cond_image.shape))
            raise UserError(f"conditioning images must be {'×'.join(map(str, want))}, got {got}")
        inputs.shared["cond_image"] = cond_image
    return inputs, guided
