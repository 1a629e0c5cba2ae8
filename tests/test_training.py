import json
import math

import numpy as np
import pytest
import torch

from ddpm.process import q_sample
from ddpm.schedules import ScheduleConfig, make_schedule
from ddpm.training import EMA, TrainConfig, diffusion_loss, learning_rate, train
from ddpm.training.batches import batch_indices
from ddpm.training.ema import ema_decay_at

from .helpers import digits_images, tiny_run


def test_loss_is_algorithm_1(linear_schedule):
    """Same draws, computed by hand: t ~ U{0..T−1}, ε ~ N(0, I), x_t by eq. 4, ‖ε − ε_θ‖²."""
    x0 = torch.rand(6, 1, 4, 4) * 2 - 1
    seen = {}

    def model(xt, t):
        seen["xt"], seen["t"] = xt, t
        return 0.5 * xt

    loss = diffusion_loss(model, x0, linear_schedule, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    t = torch.randint(0, 1000, (6,), generator=g)
    eps = torch.randn(x0.shape, generator=g)
    xt = q_sample(x0, t, linear_schedule, eps)
    assert torch.equal(seen["t"], t) and torch.allclose(seen["xt"], xt)
    assert loss.item() == pytest.approx(((eps - 0.5 * xt) ** 2).mean().item(), rel=1e-6)


def test_timesteps_are_uniform(linear_schedule):
    seen = []
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        diffusion_loss(lambda xt, t: seen.append(t) or xt, torch.zeros(400, 1, 1, 1), linear_schedule, g)
    t = torch.cat(seen)
    counts = torch.bincount(t // 100, minlength=10).double()
    assert t.min() >= 0 and t.max() <= 999
    assert ((counts - 2000).abs() < 5 * math.sqrt(2000)).all()  # 10 bins of expected 2000


@pytest.mark.parametrize("prediction_type", ["x0", "v"])
def test_other_targets(prediction_type):
    schedule = make_schedule(ScheduleConfig(schedule="cosine", num_timesteps=100))
    x0 = torch.rand(4, 1, 2, 2)
    loss = diffusion_loss(
        lambda xt, t: torch.zeros_like(xt), x0, schedule, torch.Generator(), prediction_type
    )
    assert loss.item() > 0


def test_ema_update_formula():
    model = torch.nn.Linear(2, 1)
    ema = EMA(model, decay=0.9)
    before = ema.model.weight.clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model, step=1000)
    assert torch.allclose(ema.model.weight, 0.9 * before + 0.1 * model.weight)
    ema.update(model, step=0)  # warm-up: decay (1 + 0)/(10 + 0) = 0.1
    assert torch.allclose(ema.model.weight, 0.1 * (0.9 * before + 0.1 * model.weight) + 0.9 * model.weight)
    assert not ema.model.weight.requires_grad
    assert ema_decay_at(0.999, 0) == 0.1 and ema_decay_at(0.999, 10**6) == 0.999


def test_learning_rate_schedule():
    c = TrainConfig(steps=1000, lr=1e-3, warmup_steps=100, lr_schedule="cosine", min_lr_ratio=0.1)
    assert learning_rate(c, 0) == pytest.approx(1e-5)
    assert learning_rate(c, 99) == pytest.approx(1e-3)
    assert learning_rate(c, 100) == pytest.approx(1e-3)
    assert learning_rate(c, 1000) == pytest.approx(1e-4)
    assert learning_rate(c, 550) == pytest.approx(1e-4 + 0.9e-3 * 0.5)
    constant = TrainConfig(steps=1000, lr=1e-3, warmup_steps=0)
    assert learning_rate(constant, 0) == learning_rate(constant, 999) == 1e-3


def test_batches_cover_each_epoch_once_and_depend_only_on_step():
    n, b = 103, 10
    epoch0 = torch.cat([batch_indices(n, b, s, seed=4) for s in range(10)])
    assert len(set(epoch0.tolist())) == 100  # no repeats; the 3 left over are dropped
    assert torch.equal(batch_indices(n, b, 7, seed=4), batch_indices(n, b, 7, seed=4))
    assert not torch.equal(batch_indices(n, b, 10, seed=4), batch_indices(n, b, 0, seed=4))  # new epoch order


def test_tiny_model_overfits_a_handful_of_images(tmp_path):
    """Eight digits, many steps: the noise-prediction loss must fall far below its starting ≈ 1."""
    run = tiny_run(steps=300, batch_size=8, lr=3e-3, warmup_steps=10, checkpoint_every=1000, log_every=25)
    result = train(run, digits_images(8), tmp_path / "run", progress=False)
    lines = (tmp_path / "run" / "log.jsonl").read_text().splitlines()
    first, last = json.loads(lines[0])["loss"], json.loads(lines[-1])["loss"]
    assert first > 0.5
    assert last < 0.25 * first
    assert result.step == 300


class _RecordingNet(torch.nn.Module):
    """A stand-in network: out = scale · y + x_t, recording every call."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(0.5))
        self.calls = []

    def forward(self, x, t, *, cond_image):
        self.calls.append((x.clone(), t.clone()))
        return self.scale * cond_image + x


def test_regression_preview_is_one_network_pass(linear_schedule):
    """A regression model's preview is f_θ(0, 0 | y) from one call, not a sampler's chain."""
    from ddpm.samplers import SamplerConfig
    from ddpm.training.conditioning import Conditioning
    from ddpm.training.preview import preview

    net = _RecordingNet()
    conditioning = Conditioning(image=lambda x0, g: {"cond_image": -x0})
    images = digits_images(4)
    noise = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    x, nrow = preview(
        net,
        linear_schedule,
        "eps",
        SamplerConfig(sampler="ddim", steps=5),
        conditioning,
        images,
        noise,
        seed=0,
        regression=True,
    )
    truth = images.float() / 127.5 - 1
    assert len(net.calls) == 1
    xt, t = net.calls[0]
    assert torch.equal(xt, torch.zeros_like(noise)) and torch.equal(t, torch.zeros(4, dtype=torch.long))
    assert nrow == 3 and x.shape == (12, 1, 8, 8)
    assert torch.allclose(x[0::3], -truth) and torch.allclose(x[2::3], truth)
    assert torch.allclose(x[1::3], -0.5 * truth)  # (condition, answer, truth) triplets


def test_the_no_label_index_is_one_rule():
    """Label dropping, the network's class table and its null_class all use null_label."""
    from ddpm.models import UNet, UNetConfig
    from ddpm.models.embeddings import null_label
    from ddpm.training.conditioning import Conditioning

    labels = torch.tensor([0, 1, 2, 1])
    cond = Conditioning(labels=labels, num_classes=3, drop_prob=0.999)
    dropped = cond.batch(torch.arange(4), None, torch.Generator().manual_seed(0), "cpu")["class_labels"]
    assert null_label(3) == 3 and torch.equal(dropped, torch.full((4,), null_label(3)))
    config = UNetConfig(
        image_size=8, base_channels=16, channel_mult=(1, 2), attention_resolutions=(), num_classes=3
    )
    model = UNet(config)
    assert model.null_class == null_label(3)
    assert model.class_embed.num_embeddings == null_label(3) + 1


@pytest.mark.parametrize("prediction_type", ["eps", "x0", "v", "mu"])
def test_bound_weights_follow_the_kl_of_each_step(prediction_type):
    """w_t ‖target − f‖² is proportional (one constant for all t) to KL(q(x_{t−1}|x_t,x_0) ‖ p_θ) with
    σ_t² = β_t, the reverse mean computed from the prediction by the conversions."""
    from ddpm.process import predict_x0, q_posterior_mean, training_target
    from ddpm.process.vlb import normal_kl
    from ddpm.training.loss_weights import bound_weights

    schedule = make_schedule(ScheduleConfig(schedule="linear", num_timesteps=1000))
    weights = bound_weights(schedule, prediction_type)
    assert weights.mean().item() == pytest.approx(1.0)
    g = torch.Generator().manual_seed(0)
    ratios = []
    for t in (0, 1, 17, 300, 999):
        x0 = torch.rand(1, 6, generator=g, dtype=torch.float64) * 2 - 1
        eps = torch.randn(1, 6, generator=g, dtype=torch.float64)
        ab = schedule.alpha_bar[t]
        xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
        target = training_target(x0, eps, t, schedule, prediction_type)
        output = target + 0.01 * torch.randn(1, 6, generator=g, dtype=torch.float64)
        mean = q_posterior_mean(x0, xt, t, schedule)
        model_mean = q_posterior_mean(predict_x0(output, xt, t, schedule, prediction_type), xt, t, schedule)
        logvar = torch.log(schedule.betas[t]).expand(1, 6)
        kl = normal_kl(mean, logvar, model_mean, logvar).sum()
        ratios.append(kl.item() / (weights[t].item() * (output - target).pow(2).sum().item()))
    assert np.allclose(ratios, ratios[0], rtol=1e-6)
