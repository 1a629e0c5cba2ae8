"""The shipped image-to-image models restore a user's image from the command line."""

import numpy as np
import torch
from PIL import Image

from ddpm.cli.main import main
from ddpm.data import load_fashion_mnist


def test_fashion_mnist_sr4_upscales_an_image_consistently(tmp_path):
    """`ddpm restore fashion-mnist-sr4`: an 8×8 garment becomes 32×32, and averaging the result back
    over 4×4 blocks returns (nearly) the input: the model adds detail, not a different garment."""
    garments = load_fashion_mnist(split="test", image_size=32).images[:4, 0]
    errors = []
    for i, garment in enumerate(garments):
        small = torch.nn.functional.avg_pool2d(garment[None, None].float(), 4)[0, 0]
        Image.fromarray(small.round().clamp(0, 255).byte().numpy()).save(tmp_path / f"small{i}.png")
        out = tmp_path / f"big{i}.png"
        args = ["restore", "fashion-mnist-sr4", "--input", str(tmp_path / f"small{i}.png"), "--out", str(out)]
        assert main([*args, "--steps", "10", "--seed", "1"]) == 0
        big = torch.from_numpy(np.asarray(Image.open(out).convert("L")).astype(np.float32))
        assert big.shape == (32, 32)
        back = torch.nn.functional.avg_pool2d(big[None, None], 4)[0, 0]
        errors.append((back - small).abs().mean().item() / 255)
        assert (big - garment.float()).abs().mean() / 255 < 0.15  # close to the true garment
    assert max(errors) < 0.03, errors
