"""Image-to-image restoration with a trained conditional model (SR3 / Palette), or its regression
baseline, on a user's own images: build the condition y the task defines, sample x | y, and keep the
known pixels of masked tasks exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ddpm.data.degradations import apply_mask, bicubic_upsample, greyscale, network_condition, side_crop_mask
from ddpm.errors import UserError
from ddpm.imaging import to_model_range
from ddpm.models.denoiser import model_denoiser
from ddpm.pipelines.generation import generate
from ddpm.pipelines.loading import LoadedModel
from ddpm.samplers import SamplerConfig
from ddpm.training.objective import regression_output

MASKED = ("inpaint-center", "inpaint-boxes", "inpaint-strokes", "uncrop")


def read_image(path: str | Path, channels: int, convert: bool = False) -> torch.Tensor:
    """An image file as (1, C, H, W) in [−1, 1]; wrong channel counts are errors, not conversions,
    unless ``convert`` (colourisation takes a grey image or a colour one, whose colours it drops)."""
    try:
        with Image.open(path) as im:
            mode = im.mode
            im.load()
            image = im
    except FileNotFoundError:
        raise UserError(f"input image {path} does not exist") from None
    except (UnidentifiedImageError, OSError) as err:
        raise UserError(f"cannot read image {path}: {err}") from None
    have = 1 if mode in ("L", "1", "I", "I;16") else 3 if mode in ("RGB", "RGBA", "P", "CMYK") else None
    if have != channels and not (convert and have is not None):
        want = "greyscale" if channels == 1 else "RGB"
        raise UserError(f"{path} is a {mode} image but the model restores {want} ({channels}-channel) images")
    return image_tensor(image, channels)


def image_tensor(image: Image.Image, channels: int) -> torch.Tensor:
    """A PIL image as (1, C, H, W) in [−1, 1], converted to grey (C = 1) or RGB (C = 3)."""
    t = torch.from_numpy(np.asarray(image.convert("L" if channels == 1 else "RGB")).copy())
    t = t[None] if channels == 1 else t.permute(2, 0, 1)
    return to_model_range(t[None])


def mask_tensor(image: Image.Image) -> torch.Tensor:
    """A mask image as (1, 1, H, W): white (≥ 128) = known pixel (1), black = to fill (0)."""
    return torch.from_numpy((np.asarray(image.convert("L")) >= 128).astype(np.float32))[None, None]


def read_mask(path: str | Path, size: int) -> torch.Tensor:
    """A mask image as (1, 1, S, S): white (≥ 128) = known pixel, black = to fill."""
    try:
        with Image.open(path) as im:
            mask = mask_tensor(im)
    except FileNotFoundError:
        raise UserError(f"mask {path} does not exist") from None
    except (UnidentifiedImageError, OSError) as err:
        raise UserError(f"cannot read mask {path}: {err}") from None
    h, w = mask.shape[-2:]
    if (h, w) != (size, size):
        raise UserError(f"mask {path} is {w}×{h}; the model works at {size}×{size}")
    return mask


def condition_from_input(task: str, image: torch.Tensor, size: int, mask: torch.Tensor | None):
    """(y, mask) for a user's input image: the low-resolution image for sr2/sr4, the full image plus a
    mask for inpainting/uncropping, any image for colourisation, the degraded JPEG for jpeg."""
    h, w = image.shape[-2:]
    if task in ("sr2", "sr4"):
        factor = int(task[-1])
        if (h, w) != (size // factor, size // factor):
            raise UserError(
                f"{task} takes a {size // factor}×{size // factor} input (the model makes {size}×{size}); "
                f"got {w}×{h}"
            )
        return bicubic_upsample(image, factor), None
    if (h, w) != (size, size):
        raise UserError(f"the model restores {size}×{size} images; the input is {w}×{h}")
    if task in MASKED:
        if mask is None:
            if task != "uncrop":
                raise UserError(f"{task} needs --mask (white = keep, black = fill)")
            mask = side_crop_mask(image.shape, "right")
        return apply_mask(image, mask), mask
    if task == "colorize":
        return greyscale(image), None
    return image, None


def nearest_fill(y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Every unknown pixel (mask 0) takes the value of its nearest known pixel (Euclidean distance):
    the non-learned baseline of inpainting and uncropping."""
    from scipy.ndimage import distance_transform_edt

    out = y.clone()
    for i in range(len(y)):
        hole = mask[i, 0].cpu().numpy() < 0.5
        if not hole.any() or hole.all():
            continue
        _, (rows, cols) = distance_transform_edt(hole, return_indices=True)
        out[i] = y[i][:, torch.from_numpy(rows), torch.from_numpy(cols)]
    return out


def classical_baseline(y: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """The non-learned answer a task is compared with: nearest known pixel for masked tasks, else the
    condition itself (bicubic upsampling for sr2/sr4, the grey image for colorize, the JPEG for jpeg)."""
    return y.clone() if mask is None else nearest_fill(y, mask)


@torch.no_grad()
def restore(
    loaded: LoadedModel,
    y: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    samples: int = 1,
    seed: int = 0,
    sampler: SamplerConfig | None = None,
    on_step=None,
    progress: bool = False,
) -> torch.Tensor:
    """``samples`` restorations (K, B, C, H, W) of conditions y (B, C, H, W) in [−1, 1];
    ``on_step`` is passed to :func:`generate` for the first (a live preview).

    A regression model gives one deterministic answer (repeated); a diffusion model draws samples
    of x | y. With a mask, the known pixels of the result are y's own, exactly.
    """
    cond = network_condition(y, mask)
    if loaded.config.train.objective == "regression":
        out = regression_output(model_denoiser(loaded.model, cond_image=cond), y).float().cpu()
        out = out.clamp(-1, 1)[None].expand(samples, *out.shape)
    else:
        draws = [
            generate(
                loaded,
                len(y),
                seed=seed + k,
                sampler=sampler,
                cond_image=cond,
                on_step=on_step if k == 0 else None,
                progress=progress,
            ).images
            for k in range(samples)
        ]
        out = torch.stack(draws).clamp(-1, 1)
    if mask is not None:
        out = mask * y + (1 - mask) * out
    return out
