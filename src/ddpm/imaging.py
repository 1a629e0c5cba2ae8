"""Turning tensors into pictures: uint8 conversion, image grids, denoising animations, safe saving."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from PIL import Image

from ddpm.fileio import atomic_write


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[−1, 1] floats → uint8 [0, 255] (values outside are clipped)."""
    return ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def make_image_grid(images: torch.Tensor, nrow: int | None = None, padding: int = 2) -> Image.Image:
    """(N, C, H, W) images in [−1, 1] (or uint8) → one PIL image, ``nrow`` per row (default ≈ √N)."""
    if images.dtype != torch.uint8:
        images = to_uint8(images)
    n, c, h, w = images.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / nrow)
    grid = torch.full(
        (c, rows * (h + padding) + padding, nrow * (w + padding) + padding), 255, dtype=torch.uint8
    )
    for i in range(n):
        r, col = divmod(i, nrow)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[:, top : top + h, left : left + w] = images[i]
    array = grid.permute(1, 2, 0).numpy()
    return Image.fromarray(array[..., 0] if c == 1 else array, "L" if c == 1 else "RGB")


def save_image(image: Image.Image, path: str | Path, scale: int = 1) -> None:
    """Write a PIL image atomically (a crash never leaves half a file), optionally enlarged ×scale."""
    if scale > 1:
        image = enlarge(image, scale)
    fmt = Image.registered_extensions().get(Path(path).suffix.lower(), "PNG")
    atomic_write(path, lambda tmp: image.save(tmp, format=fmt))


def save_animation(
    frames: list[Image.Image], path: str | Path, duration_ms: int = 60, hold_ms: int = 1500
) -> None:
    """Write frames as a looping GIF, the last one held for ``hold_ms``."""
    durations = [duration_ms] * (len(frames) - 1) + [hold_ms]
    atomic_write(
        path,
        lambda tmp: frames[0].save(
            tmp, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0
        ),
    )


def enlarge(image: Image.Image, scale: int) -> Image.Image:
    """Nearest-neighbour enlargement, so small images stay crisp on screen."""
    return image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] → float [−1, 1] (DDPM §3.3), the inverse of :func:`to_uint8`."""
    return images.float() / 127.5 - 1
