"""Degradations y = D(x) for image-to-image tasks: each makes the conditioning image of a training
pair (y, x) on the fly, from a batch x in [−1, 1] and an explicit generator (SR3, Palette).

Every function returns y with x's shape (a low-resolution y is upsampled back to full size, as SR3
feeds it to the network), in [−1, 1]. Masked tasks also return the mask (1 = known pixel), which
restoration keeps exactly.
"""

from __future__ import annotations

import io

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from ddpm.imaging import to_model_range, to_uint8


def downsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Area-average ×``factor`` down, then bicubic back up: SR3's conditioning input (Saharia et al. 2021)."""
    if x.shape[-1] % factor or x.shape[-2] % factor:
        raise ValueError(f"image size {tuple(x.shape[-2:])} is not divisible by {factor}")
    low = F.avg_pool2d(x, factor)
    return bicubic_upsample(low, factor)


def bicubic_upsample(low: torch.Tensor, factor: int) -> torch.Tensor:
    """Bicubic ×``factor`` upsampling, clamped to [−1, 1] (also the non-learned baseline)."""
    return F.interpolate(low, scale_factor=factor, mode="bicubic", align_corners=False).clamp(-1, 1)


def center_box_mask(shape: tuple[int, ...], fraction: float = 0.5) -> torch.Tensor:
    """(B, 1, H, W) mask, 1 = known, with a centred square hole of ``fraction`` of the side."""
    b, _, h, w = shape
    mask = torch.ones(b, 1, h, w)
    hh, ww = round(h * fraction), round(w * fraction)
    top, left = (h - hh) // 2, (w - ww) // 2
    mask[:, :, top : top + hh, left : left + ww] = 0
    return mask


def random_box_mask(
    shape: tuple[int, ...], generator: torch.Generator, boxes: int = 3, max_fraction: float = 0.4
):
    """Holes of ``boxes`` random rectangles, each side up to ``max_fraction`` of the image."""
    b, _, h, w = shape
    mask = torch.ones(b, 1, h, w)
    for i in range(b):
        for _ in range(boxes):
            bh = int(torch.randint(2, max(3, int(h * max_fraction)) + 1, (1,), generator=generator))
            bw = int(torch.randint(2, max(3, int(w * max_fraction)) + 1, (1,), generator=generator))
            top = int(torch.randint(0, h - bh + 1, (1,), generator=generator))
            left = int(torch.randint(0, w - bw + 1, (1,), generator=generator))
            mask[i, :, top : top + bh, left : left + bw] = 0
    return mask


def stroke_mask(shape: tuple[int, ...], generator: torch.Generator, strokes: int = 4, width: float = 0.08):
    """Free-form holes: ``strokes`` random polylines of thickness ``width`` × side (Palette's
    irregular masks, in miniature)."""
    b, _, h, w = shape
    masks = []
    for _ in range(b):
        canvas = Image.new("L", (w, h), 255)
        draw = ImageDraw.Draw(canvas)
        for _ in range(strokes):
            pts = torch.rand(int(torch.randint(2, 5, (1,), generator=generator)), 2, generator=generator)
            xy = [(float(px) * (w - 1), float(py) * (h - 1)) for px, py in pts]
            draw.line(xy, fill=0, width=max(1, round(width * max(h, w))), joint="curve")
        masks.append(torch.from_numpy(np.asarray(canvas, dtype=np.float32) / 255.0))
    return torch.stack(masks)[:, None]


def side_crop_mask(shape: tuple[int, ...], side: str = "right", fraction: float = 0.5) -> torch.Tensor:
    """Uncropping: the ``fraction`` of the image on one ``side`` is unknown (Palette's outpainting)."""
    b, _, h, w = shape
    mask = torch.ones(b, 1, h, w)
    n = round((w if side in ("left", "right") else h) * fraction)
    if side == "right":
        mask[..., w - n :] = 0
    elif side == "left":
        mask[..., :n] = 0
    elif side == "bottom":
        mask[..., h - n :, :] = 0
    elif side == "top":
        mask[..., :n, :] = 0
    else:
        raise ValueError(f"unknown side {side!r}")
    return mask


def apply_mask(x: torch.Tensor, mask: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
    """Known pixels of x, ``fill`` elsewhere (the masked input the network sees)."""
    return x * mask + fill * (1 - mask)


def greyscale(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma Y = 0.299 R + 0.587 G + 0.114 B, replicated to 3 channels (colourisation input)."""
    if x.shape[1] != 3:
        raise ValueError("greyscale needs RGB images")
    y = 0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
    return y.expand_as(x).contiguous()


def jpeg(x: torch.Tensor, quality: int = 10) -> torch.Tensor:
    """Round trip through Pillow's JPEG encoder at ``quality`` (JPEG restoration input)."""
    out = []
    for img in to_uint8(x):
        arr = img.permute(1, 2, 0).numpy()
        pil = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
        buf = io.BytesIO()
        pil.save(buf, format="JPEG", quality=quality)
        back = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert(pil.mode))
        out.append(torch.from_numpy(back.copy()).reshape(arr.shape).permute(2, 0, 1))
    return to_model_range(torch.stack(out))


TASKS = (
    "none",
    "sr2",
    "sr4",
    "inpaint-center",
    "inpaint-boxes",
    "inpaint-strokes",
    "uncrop",
    "colorize",
    "jpeg",
)


def degrade(
    task: str, x: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(y, mask) for a named task; mask is None for tasks without known pixels."""
    if task in ("sr2", "sr4"):
        return downsample(x, int(task[-1])), None
    if task.startswith("inpaint") or task == "uncrop":
        if task == "inpaint-center":
            mask = center_box_mask(x.shape)
        elif task == "inpaint-boxes":
            mask = random_box_mask(x.shape, generator)
        elif task == "inpaint-strokes":
            mask = stroke_mask(x.shape, generator)
        else:
            mask = side_crop_mask(x.shape, "right")
        mask = mask.to(x.device, x.dtype)
        return apply_mask(x, mask), mask
    if task == "colorize":
        return greyscale(x), None
    if task == "jpeg":
        return jpeg(x), None
    raise ValueError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")


def condition_channels(task: str, image_channels: int) -> int:
    """Channels of the network's conditioning input for a task (masked tasks add the mask)."""
    if task == "none":
        return 0
    return image_channels + (1 if task.startswith("inpaint") or task == "uncrop" else 0)


def network_condition(y: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """What is concatenated to x_t: y, plus the mask as one more channel for masked tasks."""
    return y if mask is None else torch.cat([y, mask], dim=1)


def augment_condition(
    y: torch.Tensor, max_level: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian conditioning augmentation (Ho et al. 2022, Cascaded Diffusion Models §3.2): with
    s ~ U[0, max_level] per image, y_s = √(1 − s²) y + s ε. The SR stage learns to expect imperfect
    low-resolution inputs, as a base model's samples are; s is returned for the network to see."""
    s = torch.rand(len(y), generator=generator) * max_level
    eps = torch.randn(y.shape, generator=generator)
    return noise_condition(y, s, eps), s


def noise_condition(y: torch.Tensor, level: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """y_s = √(1 − s²) y + s ε at per-image levels s (B,)."""
    s = level.to(y)[:, None, None, None]
    return (1 - s**2).sqrt() * y + s * eps.to(y)
