"""scikit-learn's 8×8 handwritten digits (1,797 images, in its wheel): a data set for fast tests."""

from __future__ import annotations

import numpy as np
import torch

from ddpm.data.dataset import ImageDataset
from ddpm.data.fashion_mnist import fit_size
from ddpm.errors import UserError


def load_digits(image_size: int = 8) -> ImageDataset:
    """The digits as (1797, 1, S, S) uint8, values 0–16 scaled to 0–255; S > 8 pads with zeros."""
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError:
        message = "the digits data set needs scikit-learn: pip install 'ddpm-toolkit[digits]'"
        raise UserError(message) from None
    bunch = sk_load_digits()
    images = np.round(bunch.images * (255 / 16)).astype(np.uint8)
    x = fit_size(torch.from_numpy(images)[:, None], image_size)
    names = tuple(str(i) for i in range(10))
    return ImageDataset(
        images=x, labels=torch.from_numpy(bunch.target.astype(np.int64)), class_names=names, name="digits"
    )
