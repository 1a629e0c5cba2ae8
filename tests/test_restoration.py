"""Image-to-image restoration on a user's own files, and the regression baseline."""

import numpy as np
import pytest
import torch
from PIL import Image

from ddpm.cli.main import main
from ddpm.data import load_digits
from ddpm.data.degradations import center_box_mask
from ddpm.errors import UserError
from ddpm.imaging import to_model_range
from ddpm.pipelines import load_model
from ddpm.pipelines.restoration import restore

FAST = [
    "--train.steps",
    "30",
    "--train.checkpoint_every",
    "30",
    "--train.sample_every",
    "30",
    "--no-progress",
]


@pytest.fixture(scope="module")
def inpaint_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("inpaint") / "run"
    assert main(["train", "--config", "digits-inpaint-tiny", "--out", str(out), *FAST]) == 0
    return out


def _digit_png(path, size=16, mode="L"):
    arr = load_digits(size).images[5, 0].numpy()
    Image.fromarray(arr).convert(mode).save(path)
    return arr


def test_known_pixels_are_kept_exactly(inpaint_run):
    loaded = load_model(inpaint_run)
    x = to_model_range(load_digits(16).images[:4])
    mask = center_box_mask(x.shape)
    out = restore(loaded, x * mask, mask, samples=2, sampler=None)
    assert out.shape == (2, 4, 1, 16, 16)
    known = mask.expand_as(out).bool()
    assert torch.equal(out[known], (x * mask).expand_as(out)[known])
    assert not torch.equal(out[0], out[1])  # two samples differ in the hole


def test_restore_command_and_its_errors(inpaint_run, tmp_path, capsys):
    _digit_png(tmp_path / "digit.png")
    mask = np.full((16, 16), 255, np.uint8)
    mask[4:12, 4:12] = 0
    Image.fromarray(mask).save(tmp_path / "mask.png")
    out = tmp_path / "restored.png"
    args = ["restore", str(inpaint_run), "--input", str(tmp_path / "digit.png"), "--steps", "10"]
    assert main([*args, "--mask", str(tmp_path / "mask.png"), "--out", str(out)]) == 0
    restored = np.asarray(Image.open(out))
    original = np.asarray(Image.open(tmp_path / "digit.png"))
    assert np.array_equal(restored[mask == 255], original[mask == 255])
    assert main([*args, "--mask", str(tmp_path / "mask.png"), "--samples", "3", "--out", str(out)]) == 0
    capsys.readouterr()

    def error(argv):
        assert main(argv) == 2
        return capsys.readouterr().err

    assert "needs --mask" in error([*args, "--out", str(out)])
    Image.fromarray(mask[:8, :8]).save(tmp_path / "small.png")
    assert "the model works at 16×16" in error(
        [*args, "--mask", str(tmp_path / "small.png"), "--out", str(out)]
    )
    _digit_png(tmp_path / "rgb.png", mode="RGB")
    rgb_args = [
        "restore",
        str(inpaint_run),
        "--input",
        str(tmp_path / "rgb.png"),
        "--mask",
        str(tmp_path / "mask.png"),
    ]
    assert "restores greyscale" in error([*rgb_args, "--out", str(out)])
    assert "trained for inpaint-center, not sr2" in error([*args, "--task", "sr2", "--out", str(out)])
    assert "does not exist" in error(
        ["restore", str(inpaint_run), "--input", str(tmp_path / "nope.png"), "--out", str(out)]
    )


def test_regression_baseline_trains_and_restores_in_one_pass(tmp_path):
    run = tmp_path / "regression"
    assert (
        main(
            [
                "train",
                "--config",
                "digits-sr-tiny",
                "--out",
                str(run),
                "--train.objective",
                "regression",
                *FAST,
            ]
        )
        == 0
    )
    loaded = load_model(run)
    y = torch.zeros(2, 1, 16, 16)
    out = restore(loaded, y, samples=3)
    assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])  # deterministic
    _digit_png(tmp_path / "low.png", size=8)
    assert (
        main(["restore", str(run), "--input", str(tmp_path / "low.png"), "--out", str(tmp_path / "x.png")])
        == 0
    )
    assert Image.open(tmp_path / "x.png").size == (16, 16)


def test_cascade_through_the_cli(tmp_path, capsys):
    base, sr = tmp_path / "base", tmp_path / "sr"
    assert main(["train", "--config", "digits-base8-tiny", "--out", str(base), *FAST]) == 0
    assert main(["train", "--config", "digits-sr16-aug-tiny", "--out", str(sr), *FAST]) == 0
    out = tmp_path / "cascade.png"
    args = ["sample", "--cascade", str(base), str(sr), "--num", "4", "--steps", "10", "--no-progress"]
    assert main([*args, "--out", str(out), "--scale", "1", "--nrow", "4"]) == 0
    assert Image.open(out).size == (4 * 18 + 2, 18 + 2)  # 16-px images with 2-px padding
    capsys.readouterr()
    assert main(["sample", "--cascade", str(sr), str(base), "--out", str(out)]) == 2
    assert "super-resolution" in capsys.readouterr().err
    assert (
        main(
            [
                "train",
                "--config",
                "digits-sr16-aug-tiny",
                "--out",
                str(tmp_path / "x"),
                "--model.aug_level",
                "false",
            ]
        )
        == 2
    )
    assert "go together" in capsys.readouterr().err


def test_nearest_fill_copies_the_nearest_known_pixel():
    """Against a brute-force search: every hole pixel equals a known pixel at the least distance, and
    known pixels are untouched."""
    from ddpm.data.degradations import random_box_mask
    from ddpm.pipelines.restoration import classical_baseline, nearest_fill

    g = torch.Generator().manual_seed(0)
    y = torch.rand(3, 2, 12, 12, generator=g) * 2 - 1
    mask = random_box_mask(y.shape, g, boxes=2, max_fraction=0.5)
    out = nearest_fill(y * mask, mask)
    assert torch.equal(out * mask, y * mask)
    for i in range(3):
        known = mask[i, 0].nonzero().float()
        for r, c in (1 - mask[i, 0]).nonzero().tolist():
            d = ((known - torch.tensor([r, c]).float()) ** 2).sum(1)
            nearest = known[d == d.min()].long()
            candidates = [y[i, :, a, b] for a, b in nearest.tolist()]
            assert any(torch.equal(out[i, :, r, c], v) for v in candidates)
    assert torch.equal(classical_baseline(y, None), y)


def test_augmentation_level_of_a_cascade_stage(tmp_path, capsys):
    from ddpm.pipelines.cascade import augment_level

    sr = tmp_path / "sr"
    assert main(["train", "--config", "digits-sr-tiny", "--out", str(sr), *FAST]) == 0
    plain = load_model(sr)
    assert augment_level(plain, None) == 0.0
    with pytest.raises(UserError, match="without conditioning augmentation"):
        augment_level(plain, 0.1)
    aug = load_model(sr)
    aug.config.model.aug_level, aug.config.data.cond_augment = True, 0.3
    assert augment_level(aug, None) == pytest.approx(0.15)
    with pytest.raises(UserError, match=r"\[0, 1\)"):
        augment_level(aug, 1.0)
