"""Any folder of images (PNG, JPEG, …) as a data set, resized and centre-cropped to a square."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ddpm.data.dataset import ImageDataset
from ddpm.errors import UserError
from ddpm.runtime import progress_bar

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def resize_center_crop(image: Image.Image, size: int) -> Image.Image:
    """Scale the shorter side to ``size`` (bicubic, antialiased), then crop the centre square."""
    w, h = image.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    image = image.resize((nw, nh), Image.Resampling.BICUBIC)
    left, top = (nw - size) // 2, (nh - size) // 2
    return image.crop((left, top, left + size, top + size))


def fit_image(image: Image.Image, size: int, channels: int) -> np.ndarray:
    """An image as uint8 (S, S) grey or (S, S, 3) RGB: converted, resized and centre-cropped; the one
    decoding every image data set read from files shares (in memory and streamed)."""
    return np.asarray(resize_center_crop(image.convert("L" if channels == 1 else "RGB"), size))


def load_image_folder(path: str | Path, image_size: int, channels: int = 3) -> ImageDataset:
    """Every readable image under ``path`` (recursively), as uint8 (N, channels, S, S).

    Unreadable or corrupt files are skipped and listed by name on stderr; a folder with no
    readable image is an error.
    """
    root = Path(path)
    if not root.is_dir():
        raise UserError(f"image folder {root} does not exist or is not a folder")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise UserError(f"image folders load square images of ≥ 1 pixel, not {image_size!r}")
    if channels not in (1, 3):
        raise UserError(f"image folders load 1 or 3 channels, not {channels}")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())
    if not files:
        raise UserError(f"no image files ({', '.join(sorted(EXTENSIONS))}) found under {root}")
    arrays, bad = [], []
    for f in progress_bar(files, desc=f"loading {root.name}", enabled=len(files) >= 500, leave=False):
        try:
            with Image.open(f) as im:
                arrays.append(fit_image(im, image_size, channels))
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as err:
            bad.append(f"{f}: {err}")
    if bad:
        print(f"warning: skipped {len(bad)} unreadable image(s):", file=sys.stderr)
        for line in bad[:20]:
            print(f"  {line}", file=sys.stderr)
        if len(bad) > 20:
            print(f"  … and {len(bad) - 20} more", file=sys.stderr)
    if not arrays:
        raise UserError(f"none of the {len(files)} image files under {root} could be read")
    x = torch.from_numpy(np.stack(arrays))
    x = x[:, None] if channels == 1 else x.permute(0, 3, 1, 2)
    return ImageDataset(images=x.contiguous(), name=root.name)
