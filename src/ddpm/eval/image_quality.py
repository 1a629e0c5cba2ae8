"""Per-image quality of restorations: PSNR, SSIM, sharpness, and the diversity of several samples."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def psnr(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio per image, dB, for images in [−1, 1] (peak-to-peak range 2)."""
    mse = ((x - ref) ** 2).flatten(1).mean(1)
    return 10 * torch.log10(4 / mse.clamp(min=1e-12))


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    g = torch.exp(-((torch.arange(size, dtype=torch.float64) - size // 2) ** 2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(x: torch.Tensor, ref: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Structural similarity per image (Wang et al. 2004, eq. 13): local means, variances and covariance
    under an 11×11 Gaussian window (σ = 1.5), C1 = (0.01 L)², C2 = (0.03 L)², L = 2; averaged over
    valid positions and channels. Windows larger than the image shrink to fit."""
    window = min(window, x.shape[-1], x.shape[-2])
    w = _gaussian_window(window, sigma).to(x)
    c = x.shape[1]
    kernel = w.expand(c, 1, window, window)

    def blur(z):
        return F.conv2d(z, kernel, groups=c)

    mu_x, mu_y = blur(x), blur(ref)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(ref * ref) - mu_y**2
    cov = blur(x * ref) - mu_x * mu_y
    c1, c2 = (0.01 * 2) ** 2, (0.03 * 2) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return s.flatten(1).mean(1)


def sharpness(x: torch.Tensor) -> torch.Tensor:
    """Variance of the Laplacian per image (a standard focus measure): blur lowers it."""
    lap = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], dtype=x.dtype, device=x.device)
    c = x.shape[1]
    out = F.conv2d(x, lap.expand(c, 1, 3, 3), groups=c)
    return out.flatten(1).var(1)


def diversity(samples: torch.Tensor) -> torch.Tensor:
    """Mean per-pixel standard deviation across K samples (K, B, C, H, W) of the same inputs, per input:
    0 for a deterministic method."""
    return samples.std(0).flatten(1).mean(1)
