import math

import torch

from ddpm.eval.image_quality import diversity, psnr, sharpness, ssim


def test_psnr_closed_form():
    x = torch.zeros(2, 1, 8, 8)
    y = x + 0.1
    assert torch.allclose(psnr(x, y), torch.full((2,), 10 * math.log10(4 / 0.01)))


def test_ssim_properties():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 32, 32, generator=g) * 2 - 1
    assert torch.allclose(ssim(x, x), torch.ones(3), atol=1e-6)
    noisy = [ssim(x + s * torch.randn(x.shape, generator=g), x).mean() for s in (0.05, 0.2, 0.5)]
    assert noisy[0] > noisy[1] > noisy[2]
    # luminance term alone for constant images: (2 μx μy + C1)/(μx² + μy² + C1)
    a, b = torch.full((1, 1, 16, 16), 0.2), torch.full((1, 1, 16, 16), -0.3)
    c1 = 0.02**2
    assert torch.allclose(ssim(a, b), torch.tensor([(2 * 0.2 * -0.3 + c1) / (0.04 + 0.09 + c1)]), atol=1e-5)


def test_ssim_matches_scikit_image():
    from skimage import metrics

    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, 1, 32, 32, generator=g, dtype=torch.float64) * 2 - 1
    y = (x + 0.2 * torch.randn(x.shape, generator=g, dtype=torch.float64)).clamp(-1, 1)
    ref = metrics.structural_similarity(
        x[0, 0].numpy(),
        y[0, 0].numpy(),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=2.0,
    )
    assert abs(ssim(y, x).item() - ref) < 2e-3


def test_sharpness_and_diversity():
    g = torch.Generator().manual_seed(2)
    x = torch.rand(2, 1, 16, 16, generator=g)
    blurred = torch.nn.functional.avg_pool2d(x, 3, 1, 1)
    assert (sharpness(blurred) < sharpness(x)).all()
    same = torch.stack([x, x, x])
    assert torch.equal(diversity(same), torch.zeros(2))
    assert (diversity(torch.stack([x, blurred])) > 0).all()
