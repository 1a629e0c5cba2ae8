"""Learned reverse variance (Nichol & Dhariwal 2021): σ² = exp(v log β + (1−v) log β̃), L_hybrid."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from ddpm.configuration import to_dict
from ddpm.errors import UserError
from ddpm.eval.nll import variational_bound, variational_bounds
from ddpm.pipelines import load_model
from ddpm.process import learned_log_variance
from ddpm.process.config import DiffusionConfig
from ddpm.samplers import SamplerConfig, sample
from ddpm.schedules import make_schedule
from ddpm.training import TrainingRun, train
from ddpm.training.objective import denoising_loss, hybrid_loss
from ddpm.validation import InvalidValue
from tests.helpers import digits_images, tiny_config

SCHEDULE = make_schedule(DiffusionConfig(num_timesteps=50, beta_end=0.3))


def test_learned_log_variance_interpolates_between_beta_and_beta_tilde():
    t = torch.tensor([0, 1, 10, 49])
    like = torch.zeros(4, 1, 2, 2)
    log_beta = SCHEDULE.betas.log()[t].reshape(-1, 1, 1, 1)
    log_tilde = SCHEDULE.posterior_log_variance_clipped[t].reshape(-1, 1, 1, 1)
    for v in (0.0, 1.0, 0.25, -0.5):
        got = learned_log_variance(like.double() + v, t, SCHEDULE)
        assert torch.allclose(got, v * log_beta + (1 - v) * log_tilde, rtol=1e-12)
    assert torch.allclose(learned_log_variance(like.double() + 1, t, SCHEDULE), log_beta.expand_as(like))
    assert torch.allclose(learned_log_variance(like.double(), t, SCHEDULE), log_tilde.expand_as(like))


def _two_headed(v_value: float, eps_fn):
    def denoise(x, t):
        return torch.cat([eps_fn(x, t), torch.full_like(x, v_value)], dim=1)

    return denoise


def test_bound_with_v_zero_equals_the_fixed_beta_tilde_bound():
    """A network whose v output is 0 has σ² = β̃ at every step: its bound with variance learned is
    the bound of the same ε-network with the fixed β̃ variance, term by term."""
    x0 = (
        torch.randint(0, 256, (3, 1, 4, 4), generator=torch.Generator().manual_seed(0)).double() / 127.5
    ) - 1

    def eps(x, t):
        return 0.3 * x

    fixed = variational_bound(
        eps, x0, SCHEDULE, "eps", "beta_tilde", generator=torch.Generator().manual_seed(1)
    )
    learned = variational_bound(
        _two_headed(0.0, eps), x0, SCHEDULE, "eps", "learned", generator=torch.Generator().manual_seed(1)
    )
    assert torch.allclose(torch.from_numpy(learned.total), torch.from_numpy(fixed.total), rtol=1e-9)
    assert torch.allclose(torch.from_numpy(learned.kl), torch.from_numpy(fixed.kl), rtol=1e-9)
    with pytest.raises(UserError, match="learned_variance"):
        variational_bound(eps, x0, SCHEDULE, "eps", "learned")


def test_bounds_under_several_variances_match_one_call_each():
    """One pass that scores learned, β and β̃ together gives each the terms of its own call (same
    noise), and the three differ where the variances differ."""
    x0 = (
        torch.randint(0, 256, (2, 1, 4, 4), generator=torch.Generator().manual_seed(3)).double() / 127.5
    ) - 1

    def eps(x, t):
        return 0.2 * x + 0.01 * t.reshape(-1, 1, 1, 1)

    denoise = _two_headed(0.4, eps)
    together = variational_bounds(
        denoise,
        x0,
        SCHEDULE,
        "eps",
        ("learned", "beta", "beta_tilde"),
        generator=torch.Generator().manual_seed(5),
    )
    for variance in ("learned", "beta", "beta_tilde"):
        alone = variational_bound(
            denoise, x0, SCHEDULE, "eps", variance, generator=torch.Generator().manual_seed(5)
        )
        assert torch.allclose(torch.from_numpy(together[variance].kl), torch.from_numpy(alone.kl), rtol=1e-12)
        assert torch.allclose(
            torch.from_numpy(together[variance].decoder), torch.from_numpy(alone.decoder), rtol=1e-12
        )
    totals = [together[v].total.mean() for v in ("learned", "beta", "beta_tilde")]
    assert len({round(float(x), 9) for x in totals}) == 3


def test_hybrid_loss_trains_v_through_the_bound_only():
    """L_hybrid's gradient on the prediction is L_simple's (the bound sees the mean under a
    stop-gradient); the bound's gradient reaches v; with λ = 0 it is L_simple."""
    gen = torch.Generator().manual_seed(0)
    x0 = (torch.randint(0, 256, (6, 1, 4, 4), generator=gen).float() / 127.5) - 1
    eps = torch.randn(x0.shape, generator=gen)
    t = torch.tensor([0, 1, 5, 20, 30, 49])
    output = torch.randn(6, 2, 4, 4, generator=gen, requires_grad=True)
    loss = hybrid_loss(lambda xt, tt: output, x0, t, eps, SCHEDULE, "eps", None, vlb_weight=0.001)
    loss.backward()
    pred = output.detach()[:, :1].clone().requires_grad_(True)
    simple = denoising_loss(lambda xt, tt: pred, x0, t, eps, SCHEDULE, "eps")
    simple.backward()
    assert torch.allclose(output.grad[:, :1], pred.grad, atol=1e-7)
    assert output.grad[:, 1:].abs().sum() > 0
    plain = hybrid_loss(lambda xt, tt: output, x0, t, eps, SCHEDULE, "eps", None, vlb_weight=0.0)
    assert plain.item() == pytest.approx(simple.item(), rel=1e-6)


def test_learned_variance_config_rules():
    with pytest.raises(InvalidValue, match="learned_variance"):
        DiffusionConfig(learned_variance=True, prediction_type="mu")
    with pytest.raises(InvalidValue, match="learned_variance"):
        DiffusionConfig(learned_variance=True, prediction_type="x0", preconditioning="edm")


def test_a_learned_variance_model_trains_samples_and_bounds(tmp_path):
    """Trained end to end: the saved network has 2C outputs; ancestral sampling with the learned
    variance (full and respaced chain) and the NLL bound run; 'learned' on a fixed-variance model
    is refused in one line; the diffusers export refuses it."""
    c = tiny_config(steps=20, checkpoint_every=20)
    c.diffusion = replace(c.diffusion, learned_variance=True)
    run = TrainingRun(
        model=c.model, diffusion=c.diffusion, train=c.train, sample=c.sample, full_config=to_dict(c)
    )
    train(run, digits_images(128), tmp_path / "run", progress=False)
    loaded = load_model(tmp_path / "run")
    noise = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    out = loaded.model(noise, torch.tensor([5, 5]))
    assert out.shape == (2, 2, 8, 8)
    from ddpm.models.denoiser import model_denoiser

    denoise = model_denoiser(loaded.model)
    for steps in (0, 10):
        for variance in ("learned", "beta", "beta_tilde"):
            config = SamplerConfig(sampler="ancestral", steps=steps, variance=variance)
            x = sample(config, denoise, noise, loaded.schedule, "eps", torch.Generator().manual_seed(1))
            assert x.shape == noise.shape and torch.isfinite(x).all()
    images = torch.from_numpy(digits_images(4).numpy()).double() / 127.5 - 1
    terms = variational_bound(denoise, images, loaded.schedule, "eps", "learned")
    assert terms.total.shape == (4,) and (terms.total > 0).all()
    plain = tiny_config(steps=5, checkpoint_every=5)
    plain_run = TrainingRun(
        model=plain.model,
        diffusion=plain.diffusion,
        train=plain.train,
        sample=plain.sample,
        full_config=to_dict(plain),
    )
    train(plain_run, digits_images(64), tmp_path / "plain", progress=False)
    fixed = load_model(tmp_path / "plain")
    with pytest.raises(UserError, match="learned_variance"):
        sample(
            SamplerConfig(sampler="ancestral", variance="learned"),
            model_denoiser(fixed.model),
            noise,
            fixed.schedule,
            "eps",
        )
    from diffusers import DDPMScheduler

    from ddpm.pipelines import export_diffusers

    # a learned-variance model exports as diffusers' learned_range (tested in test_diffusers_folders)
    folder = export_diffusers(tmp_path / "run", tmp_path / "hf")
    assert DDPMScheduler.from_pretrained(folder / "scheduler").config.variance_type == "learned_range"


def test_ddpm_eval_bounds_with_the_variance_asked_for(tmp_path, capsys):
    import json

    from ddpm.cli.main import main

    c = tiny_config(steps=10, checkpoint_every=10)
    c.diffusion = replace(c.diffusion, learned_variance=True)
    run = TrainingRun(
        model=c.model, diffusion=c.diffusion, train=c.train, sample=c.sample, full_config=to_dict(c)
    )
    train(run, digits_images(128), tmp_path / "run", progress=False)
    bits = {}
    for variance in ("learned", "beta"):
        out = tmp_path / f"{variance}.json"
        args = ["eval", str(tmp_path / "run"), "--metrics", "nll", "--nll-num", "2", "--variance", variance]
        assert main([*args, "--out", str(out), "--no-progress"]) == 0
        report = json.loads(out.read_text())["metrics"]["nll"]
        assert report["variance"] == variance
        bits[variance] = report["bits_per_dim"]
    assert bits["learned"] != bits["beta"]
