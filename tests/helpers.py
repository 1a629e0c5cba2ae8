"""Small shared builders for the tests."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from ddpm.checkpoints import read_tensors
from ddpm.configuration import to_dict
from ddpm.data import load_digits
from ddpm.pipelines import load_experiment_config
from ddpm.training import TrainingRun


def tiny_config(**train_overrides):
    """The bundled digits config, shrunk to a few seconds of training."""
    config = load_experiment_config("digits-tiny")
    config.train = replace(config.train, **{"sample_every": 0, "log_every": 5, **train_overrides})
    return config


def tiny_run(**train_overrides) -> TrainingRun:
    c = tiny_config(**train_overrides)
    return TrainingRun(
        model=c.model, diffusion=c.diffusion, train=c.train, sample=c.sample, full_config=to_dict(c)
    )


def digits_images(n: int | None = None) -> torch.Tensor:
    images = load_digits(8).images
    return images if n is None else images[:n]


def final_weights(run_dir):
    """(model, EMA) tensors of a run's newest checkpoint."""
    ckpt = sorted((run_dir / "checkpoints").glob("step-*"))[-1]
    return read_tensors(ckpt, "model"), read_tensors(ckpt, "ema")


def assert_weights_close(a, b, tol=1e-5):
    for group_a, group_b in zip(a, b, strict=True):
        for k in group_a:
            assert torch.allclose(group_a[k], group_b[k], rtol=tol, atol=tol), k


def snapshot_tree(folder) -> dict[str, bytes]:
    """Every file under ``folder`` as {relative path: bytes}, to show a command changed nothing."""
    root = Path(folder)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


EMOJI_COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 180, 60),
    "blue": (40, 60, 220),
    "yellow": (240, 220, 40),
}
EMOJI_SHAPES = ("circle", "square")


def fake_emoji_package(root: Path) -> Path:
    """An unpacked emoji-datasource-google lookalike in ``root``: coloured shapes named after what
    they show (8 emoji at 64×64), for text-to-image tests without the real package."""
    import json

    from PIL import Image, ImageDraw

    img = root / "img" / "google" / "64"
    img.mkdir(parents=True)
    entries = []
    for colour, rgb in EMOJI_COLOURS.items():
        for shape in EMOJI_SHAPES:
            pic = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
            draw = ImageDraw.Draw(pic)
            (draw.ellipse if shape == "circle" else draw.rectangle)((12, 12, 52, 52), fill=(*rgb, 255))
            name = f"{colour}-{shape}.png"
            pic.save(img / name)
            entries.append(
                {
                    "name": f"LARGE {colour.upper()} {shape.upper()}",
                    "image": name,
                    "category": "Symbols",
                    "has_img_google": True,
                }
            )
    (root / "emoji.json").write_text(json.dumps(entries))
    return root
