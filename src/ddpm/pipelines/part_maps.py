"""Pictures of part maps: a colour per part, an optional blend over the image, and a legend."""

from __future__ import annotations

import colorsys

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

# the faces' 11 parts, then evenly spaced hues for any further class
BASE_PALETTE = (
    (0, 0, 0),  # background
    (240, 200, 160),  # skin
    (30, 110, 255),  # eyes
    (120, 60, 20),  # eyebrows
    (220, 30, 60),  # mouth
    (255, 140, 0),  # nose
    (150, 80, 200),  # hair
    (250, 230, 40),  # ears
    (40, 170, 80),  # clothes
    (0, 210, 210),  # accessories
    (255, 110, 200),  # facial hair
)


def part_palette(num_classes: int) -> list[tuple[int, int, int]]:
    """One RGB colour per class: the faces' palette first, then golden-ratio hues."""
    colours = list(BASE_PALETTE[:num_classes])
    for k in range(len(colours), num_classes):
        r, g, b = colorsys.hsv_to_rgb((k * 0.618034) % 1.0, 0.75, 0.95)
        colours.append((int(r * 255), int(g * 255), int(b * 255)))
    return colours


def colour_parts(labels: torch.Tensor, num_classes: int) -> np.ndarray:
    """(H, W) class ids → (H, W, 3) uint8 picture."""
    lut = np.array(part_palette(num_classes), dtype=np.uint8)
    return lut[labels.long().numpy()]


def blend(image: np.ndarray, colours: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """The part colours laid over an (H, W, 3) uint8 image with opacity ``alpha``."""
    mixed = (1 - alpha) * image.astype(np.float32) + alpha * colours.astype(np.float32)
    return mixed.round().clip(0, 255).astype(np.uint8)


def with_legend(
    picture: Image.Image, names: tuple[str, ...], present: list[int] | None = None
) -> Image.Image:
    """``picture`` with a column of colour swatches and part names on its right (only the parts in
    ``present`` if given)."""
    font = ImageFont.load_default()
    colours = part_palette(len(names))
    shown = [k for k in range(len(names)) if present is None or k in present]
    row = 14
    width = 16 + max((int(font.getlength(names[k])) for k in shown), default=0) + 8
    height = max(picture.height, row * len(shown) + 8)
    canvas = Image.new("RGB", (picture.width + width, height), (255, 255, 255))
    canvas.paste(picture, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for i, k in enumerate(shown):
        top = 4 + i * row
        x = picture.width + 4
        draw.rectangle([x, top, x + 10, top + 10], fill=colours[k], outline=(90, 90, 90))
        draw.text((x + 14, top - 1), names[k], fill=(0, 0, 0), font=font)
    return canvas


def part_map_picture(
    image: torch.Tensor, labels: torch.Tensor, names: tuple[str, ...], overlay: bool = False, scale: int = 8
) -> Image.Image:
    """The part map of one image (C, H, W) in [−1, 1] with labels (H, W): coloured parts (or,
    with ``overlay``, parts blended over the image), enlarged ``scale``×, with a legend of the
    parts present."""
    colours = colour_parts(labels, len(names))
    if overlay:
        rgb = ((image.clamp(-1, 1) + 1) * 127.5).round().byte()
        rgb = rgb.expand(3, -1, -1) if rgb.shape[0] == 1 else rgb
        colours = blend(rgb.permute(1, 2, 0).numpy(), colours)
    h, w = labels.shape
    picture = Image.fromarray(colours).resize((w * scale, h * scale), Image.NEAREST)
    return with_legend(picture, names, sorted(set(labels.reshape(-1).tolist())))
