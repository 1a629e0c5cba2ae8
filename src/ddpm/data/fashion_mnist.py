"""Fashion-MNIST (Xiao et al. 2017) from its four IDX files, e.g. Debian's ``dataset-fashion-mnist``."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch

from ddpm.data.dataset import ImageDataset
from ddpm.errors import UserError

DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")
CLASS_NAMES = (
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle-boot",
)
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
HOW_TO_GET = (
    "install Debian's package with 'apt-get install dataset-fashion-mnist', "
    "or pass --data.path to a folder holding the four IDX files (optionally .gz)"
)


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file (LeCun's MNIST format; gzip-compressed or not) into a uint8 array."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:
        raise UserError(f"cannot read IDX file {path}: {err}") from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise UserError(f"{path} is not an unsigned-byte IDX file")
    ndim = raw[3]
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise UserError(
            f"{path} is truncated: expected {int(np.prod(shape))} bytes of data, found {data.size}"
        )
    return data.reshape(shape)


def _find(root: Path, stem: str) -> Path:
    for candidate in (root / stem, root / f"{stem}.gz"):
        if candidate.exists():
            return candidate
    raise UserError(f"Fashion-MNIST file {stem}[.gz] not found in {root}: {HOW_TO_GET}")


def load_fashion_mnist(root: str | Path = "", split: str = "train", image_size: int = 32) -> ImageDataset:
    """Fashion-MNIST as (N, 1, S, S) uint8: 28×28 zero-padded to 32×32 (or resized to other S)."""
    root = Path(root) if root else DEFAULT_ROOT
    if split not in FILES:
        raise UserError(f"unknown Fashion-MNIST split {split!r}; use train or test")
    if not root.is_dir():
        raise UserError(f"Fashion-MNIST folder {root} does not exist: {HOW_TO_GET}")
    img_stem, lbl_stem = FILES[split]
    images = read_idx(_find(root, img_stem))
    labels = read_idx(_find(root, lbl_stem))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise UserError(
            f"Fashion-MNIST files in {root} have unexpected shapes {images.shape}, {labels.shape}"
        )
    x = torch.from_numpy(images.copy())[:, None]
    x = fit_size(x, image_size)
    return ImageDataset(
        images=x,
        labels=torch.from_numpy(labels.astype(np.int64)),
        class_names=CLASS_NAMES,
        name=f"fashion-mnist-{split}",
    )


def fit_size(images: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad uint8 (N, C, h, w) images evenly to size×size when they fit, else resize (bilinear)."""
    h, w = images.shape[-2:]
    if (h, w) == (size, size):
        return images
    if h <= size and w <= size:
        top, left = (size - h) // 2, (size - w) // 2
        return torch.nn.functional.pad(images, (left, size - w - left, top, size - h - top))
    resized = torch.nn.functional.interpolate(
        images.float(), size=(size, size), mode="bilinear", antialias=True
    )
    return resized.round().clamp(0, 255).to(torch.uint8)
