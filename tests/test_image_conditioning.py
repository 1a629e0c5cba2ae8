"""Image conditioning by concatenation, proved on a small task: ×2 super-resolution of digits."""

import pytest
import torch

from ddpm.cli.main import main
from ddpm.data import load_digits, task_condition
from ddpm.errors import UserError
from ddpm.imaging import to_model_range
from ddpm.pipelines import generate, load_model


@pytest.fixture(scope="module")
def sr_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sr") / "run"
    assert main(["train", "--config", "digits-sr-tiny", "--out", str(out), "--no-progress"]) == 0
    return out


def test_the_condition_steers_the_sample(sr_run):
    """Samples given a digit's low-resolution version land near that digit, not near others."""
    loaded = load_model(sr_run)
    truth = to_model_range(load_digits(16).images[-64:])  # the last digits; training saw them too
    cond = task_condition("sr2")(truth, torch.Generator().manual_seed(0))["cond_image"]
    x = generate(loaded, 64, seed=0, cond_image=cond, progress=False).images
    own = ((x - truth) ** 2).flatten(1).mean(1)
    other = ((x - truth.roll(1, 0)) ** 2).flatten(1).mean(1)
    assert own.mean() < 0.5 * other.mean()
    assert (own < other).float().mean() > 0.9


def test_conditioning_inputs_are_checked(sr_run, tmp_path):
    loaded = load_model(sr_run)
    with pytest.raises(UserError, match="conditioned on an image"):
        generate(loaded, 2, progress=False)
    with pytest.raises(UserError, match="must be 2×1×16×16"):
        generate(loaded, 2, cond_image=torch.zeros(2, 3, 16, 16), progress=False)
    assert (sr_run / "samples" / "step-0000400.png").is_file()  # (condition, sample, truth) triplets


def test_task_and_cond_channels_must_agree(tmp_path, capsys):
    argv = ["train", "--config", "digits-sr-tiny", "--out", str(tmp_path / "x"), "--model.cond_channels", "0"]
    code = main(argv)
    assert code == 2 and "set model.cond_channels = 1" in capsys.readouterr().err
