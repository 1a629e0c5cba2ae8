"""The GAN, VAE and flow baselines through the run folder, resume and the command line."""

from __future__ import annotations

import pytest
import torch

from ddpm.checkpoints import read_tensors
from ddpm.cli.main import main
from ddpm.errors import UserError
from ddpm.pipelines import load_experiment_config, load_model, run_training
from ddpm.pipelines.baselines import generate_baseline, load_baseline

FAMILIES = ("gan", "vae", "flow")


def baseline_config(family: str, **train):
    """A seconds-long baseline run on the 8×8 digits."""
    source = {
        "baseline": {
            "family": family,
            "image_size": 8,
            "in_channels": 1,
            "base_channels": 8,
            "latent_dim": 8,
            "flow_scales": 2,
            "flow_couplings": 1,
            "flow_blocks": 1,
        },
        "data": {"dataset": "digits", "image_size": 8},
        "train": {
            "objective": "baseline",
            "steps": 6,
            "batch_size": 16,
            "lr": 1e-3,
            "warmup_steps": 0,
            "log_every": 2,
            "sample_every": 3,
            "sample_num": 4,
            "checkpoint_every": 3,
            "keep_checkpoints": 0,
            **train,
        },
    }
    return load_experiment_config(source)


def newest(run_dir):
    return sorted((run_dir / "checkpoints").glob("step-*"))[-1]


@pytest.mark.parametrize("family", FAMILIES)
def test_a_baseline_run_writes_checkpoints_samples_and_resumes_exactly(family, tmp_path):
    straight = tmp_path / "straight"
    result = run_training(baseline_config(family), straight, progress=False)
    assert result.step == 6 and (straight / "samples" / "step-0000006.png").is_file()
    assert (straight / "log.jsonl").read_text().count("\n") == 3
    split = tmp_path / "split"
    run_training(baseline_config(family, steps=3), split, progress=False)
    run_training(baseline_config(family), split, resume=True, progress=False)
    for name in ("model", "model_optimizer"):
        a, b = read_tensors(newest(straight), name), read_tensors(newest(split), name)
        for key in a:
            assert torch.allclose(a[key], b[key], atol=1e-6), (name, key)


@pytest.mark.parametrize("family", FAMILIES)
def test_baseline_samples_depend_only_on_seed_and_index(family, tmp_path):
    run_training(baseline_config(family, steps=2), tmp_path / "run", progress=False)
    loaded = load_baseline(tmp_path / "run", device="cpu")
    a = generate_baseline(loaded, 6, seed=3, batch_size=4, progress=False)
    b = generate_baseline(loaded, 2, seed=3, batch_size=2, progress=False)
    assert a.shape == (6, 1, 8, 8) and a.abs().max() <= 1
    assert torch.allclose(a[:2], b, atol=1e-5)  # batch size changes only float rounding
    assert not torch.equal(a, generate_baseline(loaded, 6, seed=4, progress=False))


def test_ddpm_sample_draws_a_baseline_and_refuses_diffusion_options(tmp_path, capsys):
    run_training(baseline_config("gan", steps=2), tmp_path / "gan", progress=False)
    out = tmp_path / "grid.png"
    assert main(["sample", str(tmp_path / "gan"), "--num", "4", "--out", str(out), "--no-progress"]) == 0
    assert out.is_file() and "GAN baseline" in capsys.readouterr().out
    for extra, message in (
        (["--steps", "5"], "--steps apply to diffusion models"),
        (["--class", "0"], "--class apply to diffusion models"),
        (["--temperature", "0.5"], "--temperature applies to the flow"),
    ):
        code = main(["sample", str(tmp_path / "gan"), "--out", str(tmp_path / "x.png"), *extra])
        assert code != 0 and message in capsys.readouterr().err
    with pytest.raises(UserError, match="is a gan baseline, not a diffusion model"):
        load_model(tmp_path / "gan")


def test_baseline_configuration_mistakes_get_one_line(tmp_path, capsys):
    config = baseline_config("vae")
    config.baseline.image_size = 16
    with pytest.raises(UserError, match="the vae expects 1×16×16"):
        run_training(config, tmp_path / "run", progress=False)
    code = main(
        [
            "train",
            "--config",
            "fashion-mnist-gan",
            "--out",
            str(tmp_path / "r"),
            "--baseline.family",
            "diffusion",
        ]
    )
    assert code != 0 and "family" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("name", ["fashion-mnist", "faces"])
@pytest.mark.parametrize("family", FAMILIES)
def test_the_bundled_baseline_configs_load(name, family):
    config = load_experiment_config(f"{name}-{family}")
    assert config.train.objective == "baseline" and config.baseline.family == family
    assert config.baseline.in_channels == (3 if name == "faces" else 1)


def test_info_and_the_likelihood_of_a_baseline(tmp_path, capsys):
    run_training(baseline_config("flow", steps=2), tmp_path / "flow", progress=False)
    assert main(["info", str(tmp_path / "flow")]) == 0
    assert "normalising flow" in capsys.readouterr().out
    args = ["eval", str(tmp_path / "flow"), "--metrics", "nll", "--nll-num", "8", "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "NLL bits/dim (exact)" in out
    bits = float(out.split("NLL bits/dim (exact)")[1].split()[0])
    assert 0 < bits < 16  # 8 bits/dim is a uniform density; an untrained flow is near it
    run_training(baseline_config("gan", steps=2), tmp_path / "gan", progress=False)
    assert main(["eval", str(tmp_path / "gan"), "--metrics", "nll"]) != 0
    assert "a GAN defines no likelihood" in capsys.readouterr().err
