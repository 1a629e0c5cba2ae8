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


def test_fashion_mnist_inpaint_fills_the_hole_and_keeps_the_rest(tmp_path):
    """`ddpm restore fashion-mnist-inpaint --mask`: pixels under the white mask come back exactly;
    the filled centre is close to the true garment (much closer than a flat grey fill)."""
    garments = load_fashion_mnist(split="test", image_size=32).images[:4, 0]
    mask = np.full((32, 32), 255, np.uint8)
    mask[8:24, 8:24] = 0
    Image.fromarray(mask).save(tmp_path / "mask.png")
    hole = torch.from_numpy(mask == 0)
    ours, grey = [], []
    for i, garment in enumerate(garments):
        damaged = garment.clone()
        damaged[hole] = 128
        Image.fromarray(damaged.numpy()).save(tmp_path / f"in{i}.png")
        out = tmp_path / f"out{i}.png"
        args = ["restore", "fashion-mnist-inpaint", "--input", str(tmp_path / f"in{i}.png")]
        assert main([*args, "--mask", str(tmp_path / "mask.png"), "--out", str(out), "--steps", "20"]) == 0
        filled = torch.from_numpy(np.asarray(Image.open(out).convert("L")).astype(np.float32))
        assert torch.equal(filled[~hole], garment.float()[~hole])
        ours.append((filled[hole] - garment.float()[hole]).abs().mean().item())
        grey.append((128 - garment.float()[hole]).abs().mean().item())
    assert sum(ours) < 0.6 * sum(grey), (ours, grey)


def test_faces_colorize_gives_a_grey_face_its_colours(tmp_path):
    """`ddpm restore faces-colorize`: the result keeps the input's brightness (its luma is close to
    the grey input) and has colour (the channels differ), near the true face's colours."""
    from ddpm.data.faces import STYLES, render_face

    for i in range(3):  # faces the model has not seen (seeds far beyond its training set)
        rgb = render_face(list(STYLES)[i % len(STYLES)], 10**6 + i, (32,))[32][0]
        Image.fromarray(rgb).convert("L").save(tmp_path / f"grey{i}.png")
        out = tmp_path / f"colour{i}.png"
        assert (
            main(["restore", "faces-colorize", "--input", str(tmp_path / f"grey{i}.png"), "--out", str(out)])
            == 0
        )
        coloured = np.asarray(Image.open(out).convert("RGB")).astype(np.float32)
        grey = np.asarray(Image.open(tmp_path / f"grey{i}.png")).astype(np.float32)
        luma = np.asarray(Image.open(out).convert("L")).astype(np.float32)
        assert np.abs(luma - grey).mean() < 12
        assert coloured.std(axis=2).mean() > 8  # not grey
        truth = rgb.astype(np.float32)
        flat = np.repeat(grey[..., None], 3, axis=2)
        assert np.abs(coloured - truth).mean() < np.abs(flat - truth).mean()
