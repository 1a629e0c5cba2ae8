"""The shipped image-to-image models restore a user's image from the command line."""

import numpy as np
import pytest
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


@pytest.mark.parametrize("name", ["faces-colorize", "faces-colorize-regression"])
def test_faces_colorize_gives_a_grey_face_its_colours(tmp_path, name):
    """`ddpm restore faces-colorize` on a grey image: the result keeps the input's brightness (its luma
    is close to the grey input), has colour like the true face's, and is nearer the true colours
    than the grey image is. Faces the model has not seen (seeds far beyond its training set), of
    styles that have colour (one style is drawn in greys)."""
    from ddpm.data.faces import STYLES, render_face

    faces = []
    for i in range(12):
        rgb = render_face(list(STYLES)[i % len(STYLES)], 10**6 + i, (32,))[32][0]
        if rgb.astype(np.float32).std(axis=2).mean() > 8:
            faces.append(rgb)
    ours, flat = [], []
    for i, rgb in enumerate(faces[:3]):
        Image.fromarray(rgb).convert("L").save(tmp_path / f"grey{i}.png")
        out = tmp_path / f"colour{i}.png"
        args = ["restore", name, "--input", str(tmp_path / f"grey{i}.png"), "--out", str(out)]
        assert main(args) == 0
        coloured = np.asarray(Image.open(out).convert("RGB")).astype(np.float32)
        grey = np.asarray(Image.open(tmp_path / f"grey{i}.png")).astype(np.float32)
        luma = np.asarray(Image.open(out).convert("L")).astype(np.float32)
        truth = rgb.astype(np.float32)
        assert np.abs(luma - grey).mean() < 6
        assert coloured.std(axis=2).mean() > 0.5 * truth.std(axis=2).mean()  # colour, not grey
        ours.append(np.abs(coloured - truth).mean())
        flat.append(np.abs(np.repeat(grey[..., None], 3, axis=2) - truth).mean())
    assert len(ours) == 3 and sum(ours) < 0.8 * sum(flat), (ours, flat)
