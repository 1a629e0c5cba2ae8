"""Class conditioning with classifier-free guidance."""

import json

import pytest
import torch

from ddpm.cli.main import main
from ddpm.models import UNet, UNetConfig
from ddpm.models.denoiser import model_denoiser, model_pair_denoiser
from ddpm.samplers import classifier_free_guidance, guided_denoiser
from ddpm.training.conditioning import Conditioning


@pytest.fixture(scope="module")
def class_model():
    torch.manual_seed(0)
    model = UNet(
        UNetConfig(
            image_size=8,
            base_channels=16,
            channel_mult=(1, 2),
            attention_resolutions=(),
            num_classes=10,
            dropout=0.0,
        )
    )
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def test_guidance_scale_zero_is_unconditional_and_one_is_conditional(class_model):
    x, t = torch.randn(4, 1, 8, 8), torch.tensor([10, 200, 500, 900])
    labels = torch.tensor([1, 3, 5, 7])
    null = torch.full_like(labels, class_model.null_class)
    pair = model_pair_denoiser(class_model, {"class_labels": labels}, {"class_labels": null})
    cond = model_denoiser(class_model, class_labels=labels)(x, t)
    uncond = model_denoiser(class_model, class_labels=null)(x, t)
    # one batched call gives what two separate calls give
    c, u = pair(x, t)
    assert torch.allclose(c, cond, atol=1e-5) and torch.allclose(u, uncond, atol=1e-5)
    assert torch.allclose(guided_denoiser(pair, 0.0)(x, t), uncond, atol=1e-5)
    assert torch.allclose(guided_denoiser(pair, 1.0)(x, t), cond, atol=1e-5)
    assert torch.allclose(guided_denoiser(pair, 3.0)(x, t), uncond + 3 * (cond - uncond), atol=1e-5)
    assert not torch.allclose(cond, uncond)


def test_classifier_free_guidance_formula():
    c, u = torch.tensor([2.0]), torch.tensor([1.0])
    assert classifier_free_guidance(c, u, 0.0) == u and classifier_free_guidance(c, u, 1.0) == c
    assert classifier_free_guidance(c, u, 4.0) == torch.tensor([5.0])


def test_labels_are_dropped_at_the_configured_rate():
    labels = torch.randint(0, 10, (100_000,), generator=torch.Generator().manual_seed(0))
    cond = Conditioning(labels=labels, num_classes=10, drop_prob=0.1)
    out = cond.batch(torch.arange(100_000), None, torch.Generator().manual_seed(1), torch.device("cpu"))[
        "class_labels"
    ]
    dropped = (out == 10).double().mean().item()
    assert abs(dropped - 0.1) < 4 * (0.1 * 0.9 / 100_000) ** 0.5
    kept = out != 10
    assert torch.equal(out[kept], labels[kept])
    assert (
        Conditioning(labels=None, num_classes=0, drop_prob=0.1).batch(
            torch.arange(3), None, torch.Generator(), torch.device("cpu")
        )
        == {}
    )


def test_conditioning_checks_labels():
    from ddpm.errors import UserError

    with pytest.raises(UserError, match="no labels"):
        Conditioning(labels=None, num_classes=10, drop_prob=0.1)
    with pytest.raises(UserError, match="outside"):
        Conditioning(labels=torch.tensor([0, 12]), num_classes=10, drop_prob=0.1)


def _error(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_class_conditional_train_and_sample_through_the_cli(tmp_path, capsys):
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--config",
                "digits-class-tiny",
                "--out",
                str(run),
                "--train.steps",
                "40",
                "--train.checkpoint_every",
                "40",
                "--train.sample_every",
                "40",
                "--train.sample_steps",
                "10",
                "--no-progress",
            ]
        )
        == 0
    )
    meta = json.loads((run / "checkpoints" / "step-0000040" / "checkpoint.json").read_text())
    assert meta["class_names"] == [str(i) for i in range(10)]
    common = ["sample", str(run), "--steps", "8", "--no-progress"]
    assert (
        main([*common, "--class", "3,7", "--guidance", "3", "--num", "4", "--out", str(tmp_path / "a.png")])
        == 0
    )
    assert main([*common, "--per-class", "2", "--out", str(tmp_path / "b.png"), "--scale", "1"]) == 0
    from PIL import Image

    assert Image.open(tmp_path / "b.png").size == (2 * 10 + 2, 10 * 10 + 2)  # 10 rows (classes) of 2
    assert main([*common, "--num", "2", "--out", str(tmp_path / "c.png")]) == 0  # unconditional branch
    # w = 0 and w = 1 skip the batched pair: the unconditional / conditional model alone, the same images
    from ddpm.pipelines import generate, load_model
    from ddpm.samplers import SamplerConfig

    loaded, sampler, labels = load_model(run), SamplerConfig(sampler="ddim", steps=4), torch.tensor([3, 7])
    fp32 = dict(precision="fp32", progress=False)  # pinned: batched pair vs one call differ in bf16 rounding
    images = {
        w: generate(loaded, 2, sampler=sampler, class_labels=labels, guidance=w, **fp32).images
        for w in (0.0, 1e-6, 1.0, 1.0 + 1e-6)
    }
    unconditional = generate(loaded, 2, sampler=sampler, **fp32).images
    assert torch.equal(images[0.0], unconditional)
    torch.testing.assert_close(images[0.0], images[1e-6], atol=1e-4, rtol=0)
    torch.testing.assert_close(images[1.0], images[1.0 + 1e-6], atol=1e-4, rtol=0)
    assert not torch.allclose(images[0.0], images[1.0], atol=1e-3)
    capsys.readouterr()
    assert "unknown class 'eleven'" in _error(
        capsys, [*common, "--class", "eleven", "--out", str(tmp_path / "d.png")]
    )
    assert "not trained with class labels" in _error(
        capsys, ["sample", "fashion-mnist", "--class", "bag", "--out", str(tmp_path / "e.png")]
    )
    assert "needs a conditional model" in _error(
        capsys, ["sample", "fashion-mnist", "--guidance", "3", "--out", str(tmp_path / "f.png")]
    )
