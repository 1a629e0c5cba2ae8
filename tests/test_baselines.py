"""The baseline GAN, VAE and RealNVP: exact flow log-determinants and inverses, the loss terms
against hand and closed-form computations, the GAN's EMA, learning, and sampling."""

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from ddpm.data import load_digits
from ddpm.models.baselines import GAN, VAE, BaselineConfig, RealNVP, build_baseline
from ddpm.training.baseline_objectives import (
    bits_per_dim,
    dequantize,
    flow_negative_log_likelihood,
    gan_discriminator_loss,
    gan_generator_loss,
    vae_bits_per_dim,
    vae_negative_elbo,
)
from ddpm.validation import InvalidValue

TINY = dict(image_size=8, base_channels=8, latent_dim=4, flow_scales=2, flow_couplings=2, flow_blocks=1)


def _build(family: str, seed: int = 0, **overrides):
    config = BaselineConfig(**{**TINY, "family": family, **overrides})
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build_baseline(config)


@torch.no_grad()
def _randomise(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Move every weight off its initial value (the flow's zero-initialised couplings are the
    identity, which would make its Jacobian tests trivial)."""
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        noise = torch.rand(p.shape, generator=g, dtype=p.dtype)
        p.copy_(0.5 + noise if name.endswith(".scale") else 0.6 * (noise - 0.5))
    return model


def _digits(n: int = 16) -> torch.Tensor:
    return load_digits(8).images[:n]


def test_config_names_the_bad_key():
    with pytest.raises(InvalidValue, match=r"^unknown family 'diffusion'; choose one of gan, vae, flow$"):
        BaselineConfig(family="diffusion")
    with pytest.raises(InvalidValue, match=r"^image_size must be divisible by 8 for the vae, got 20$") as e:
        BaselineConfig(family="vae", image_size=20)
    assert e.value.key == "image_size"
    with pytest.raises(InvalidValue, match=r"^image_size must be divisible by 2\^flow_scales = 8") as e:
        BaselineConfig(family="flow", image_size=12, flow_scales=3)
    assert e.value.key == "image_size"
    BaselineConfig(family="flow", image_size=12, flow_scales=2)
    with pytest.raises(InvalidValue, match=r"^latent_dim must be an integer ≥ 1, got 0$"):
        BaselineConfig(latent_dim=0)


@pytest.mark.parametrize("size, upsamplings, start", [(8, 1, 4), (32, 3, 4), (64, 4, 4), (24, 2, 6)])
def test_gan_and_vae_shapes(size, upsamplings, start):
    config = BaselineConfig(image_size=size, in_channels=3, base_channels=4, latent_dim=4)
    assert (config.upsamplings, config.start_size) == (upsamplings, start)
    gan, vae = _build("gan", image_size=size, in_channels=3), _build("vae", image_size=size, in_channels=3)
    assert isinstance(gan, GAN) and isinstance(vae, VAE)
    x = torch.rand(2, 3, size, size) * 2 - 1
    assert gan(torch.randn(2, 4)).shape == x.shape and gan.discriminator(x).shape == (2,)
    mean, posterior = vae(x, torch.Generator().manual_seed(0))
    assert mean.shape == x.shape and posterior.mean.shape == posterior.logvar.shape == (2, 4)


def test_flow_log_det_is_the_log_abs_det_of_its_jacobian():
    model = _randomise(_build("flow", image_size=4, in_channels=2, base_channels=4), seed=1).double()
    y = torch.rand(1, 2, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.no_grad():
        z, log_det = model(y)
    jacobian = torch.autograd.functional.jacobian(
        lambda v: model(v.view(1, 2, 4, 4))[0].flatten(), y.flatten()
    )
    assert jacobian.shape == (32, 32)
    expected = torch.linalg.slogdet(jacobian).logabsdet
    assert (jacobian.abs() > 1e-3).sum() > 3 * 32 and abs(float(expected)) > 0.1  # not a permutation
    assert float(log_det[0]) == pytest.approx(float(expected), abs=1e-9)


@pytest.mark.parametrize("channels, scales", [(1, 2), (3, 2), (2, 3)])
def test_flow_inverse_undoes_forward(channels, scales):
    model = _randomise(_build("flow", in_channels=channels, flow_scales=scales), seed=3).double()
    y = torch.rand(3, channels, 8, 8, generator=torch.Generator().manual_seed(4), dtype=torch.float64) * 2 - 1
    z, log_det = model(y)
    assert z.shape == (3, channels * 64) and log_det.shape == (3,)
    assert (z - y.flatten(1)).abs().max() > 1.0
    assert torch.allclose(model.inverse(z), y, rtol=0, atol=1e-10)
    assert torch.allclose(model(y[1:2])[1], log_det[1:2], rtol=0, atol=1e-10)  # per image


def test_flow_starts_as_the_identity_with_a_gaussian_likelihood():
    model = _build("flow", in_channels=2)
    y = torch.rand(2, 2, 8, 8, generator=torch.Generator().manual_seed(5)) * 2 - 1
    z, log_det = model(y)
    assert torch.equal(log_det, torch.zeros(2))
    assert torch.equal(z.sort(dim=1).values, y.flatten(1).sort(dim=1).values)  # a permutation
    expected = Normal(0.0, 1.0).log_prob(y).flatten(1).sum(dim=1)
    assert torch.allclose(model.log_prob(y), expected, atol=1e-4)


def test_dequantize_spreads_each_value_over_its_bin():
    x = torch.arange(256, dtype=torch.uint8).repeat(4, 1).view(4, 1, 16, 16)
    y = dequantize(x, torch.Generator().manual_seed(0))
    assert y.min() >= -1 and y.max() < 1
    assert torch.equal(((y + 1) * 128).floor().to(torch.uint8), x)
    offsets = (y + 1) * 128 - x  # u ~ U[0, 1): mean ½, standard deviation 1/√12 ≈ 0.29
    assert abs(float(offsets.mean()) - 0.5) < 0.05 and abs(float(offsets.std()) - 12**-0.5) < 0.03
    assert torch.equal(y, dequantize(x, torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match="uint8"):
        dequantize(x.float(), torch.Generator())


def test_bits_per_dim_by_hand():
    # a uniform density on [−1, 1]^D: −log p = D log 2 → 8 bits per 8-bit value
    assert torch.allclose(bits_per_dim(torch.tensor([10 * math.log(2.0)]), 10), torch.tensor([8.0]))
    # all mass uniform on one bin of width 2/256 per dim: density 128^D → 0 bits
    assert torch.allclose(bits_per_dim(torch.tensor([-3 * math.log(128.0)]), 3), torch.zeros(1), atol=1e-6)
    expected = (1.5 + 3 * math.log(128)) / (3 * math.log(2))
    assert float(bits_per_dim(torch.tensor([1.5]), 3)) == pytest.approx(expected)


def test_hinge_losses_by_hand():
    real, fake = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([-2.0, 0.0, 1.5])
    # (0 + 0.5 + 2)/3 + (0 + 1 + 2.5)/3
    assert float(gan_discriminator_loss(real, fake)) == pytest.approx(2.0)
    assert float(gan_generator_loss(fake)) == pytest.approx(1 / 6)


def test_gan_ema_copies_at_decay_0_and_holds_at_decay_1():
    gan = _build("gan")
    _randomise(gan.generator, seed=6)
    gan.train()
    gan.generator(torch.randn(4, 4))  # move the BatchNorm running statistics
    gan.update_ema(0.0)
    ema, current = gan.generator_ema.state_dict(), gan.generator.state_dict()
    assert all(torch.equal(ema[k], current[k]) for k in current)
    held = {k: v.clone() for k, v in ema.items()}
    _randomise(gan.generator, seed=7)
    gan.update_ema(1.0)
    params = dict(gan.generator_ema.named_parameters())
    assert all(torch.equal(params[k], held[k]) for k in params)
    assert not gan.generator_ema.training and not any(p.requires_grad for p in gan.generator_ema.parameters())
    with pytest.raises(ValueError, match="decay"):
        gan.update_ema(1.5)


@torch.no_grad()
def test_vae_terms_against_torch_distributions():
    model = _randomise(_build("vae"), seed=8)
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(9)) * 2 - 1
    posterior = model.encode(x)
    expected_kl = kl_divergence(Normal(posterior.mean, posterior.std), Normal(0.0, 1.0)).sum(dim=1)
    assert torch.allclose(posterior.kl(), expected_kl, rtol=1e-5)
    mean, _ = model(x, torch.Generator().manual_seed(10))
    loss, terms = vae_negative_elbo(model, x, torch.Generator().manual_seed(10))
    reconstruction = -Normal(mean, model.log_sigma.exp()).log_prob(x).flatten(1).sum(dim=1).mean() / 64
    assert terms["reconstruction"] == pytest.approx(float(reconstruction), rel=1e-5)
    assert terms["kl"] == pytest.approx(float(expected_kl.mean()) / 64, rel=1e-5)
    assert float(loss) == pytest.approx(terms["reconstruction"] + terms["kl"], rel=1e-6)
    bpd = vae_bits_per_dim(model, _digits(3), torch.Generator().manual_seed(11))
    assert bpd.shape == (3,) and torch.isfinite(bpd).all()


def _train(loss_fn, params, steps: int, lr: float) -> tuple[float, float]:
    optimizer = torch.optim.Adam(params, lr=lr)
    losses = []
    for step in range(steps):
        loss = loss_fn(step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses[0], sum(losses[-5:]) / 5


def test_vae_learns():
    model, x = _build("vae"), _digits()
    y = dequantize(x, torch.Generator().manual_seed(0))

    @torch.no_grad()
    def mse() -> float:
        return float((model(y, torch.Generator().manual_seed(0))[0] - y).pow(2).mean())

    mse_before = mse()
    first, last = _train(
        lambda step: vae_negative_elbo(model, y, torch.Generator().manual_seed(step))[0],
        model.parameters(),
        steps=60,
        lr=3e-3,
    )
    mse_after = mse()
    assert last < 0.5 * first and mse_after < 0.5 * mse_before  # not just a better σ


def test_flow_learns():
    model, x = _build("flow"), _digits()
    first, last = _train(
        lambda step: flow_negative_log_likelihood(model, x, torch.Generator().manual_seed(step)).mean(),
        model.parameters(),
        steps=40,
        lr=3e-3,
    )
    assert last < first - 1.0  # bits/dim


def test_gan_discriminator_learns_against_a_fixed_generator():
    model, x = _build("gan"), _digits()
    real = dequantize(x, torch.Generator().manual_seed(0))
    with torch.no_grad():
        fake = model.generator(torch.randn(16, 4, generator=torch.Generator().manual_seed(1)))
    d = model.discriminator
    first, last = _train(lambda step: gan_discriminator_loss(d(real), d(fake)), d.parameters(), 30, 2e-3)
    assert last < 0.5 * first


@pytest.mark.parametrize("family", ["gan", "vae", "flow"])
def test_samples_are_images_and_reproducible(family):
    model = _build(family, in_channels=3)
    if family == "flow":
        _randomise(model, seed=12)
    model.train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    images = model.sample(5, torch.Generator().manual_seed(3))
    assert images.shape == (5, 3, 8, 8) and torch.isfinite(images).all()
    assert images.min() >= -1 and images.max() <= 1 and images.std() > 0
    assert torch.equal(images, model.sample(5, torch.Generator().manual_seed(3)))
    assert not torch.equal(images, model.sample(5, torch.Generator().manual_seed(4)))
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())  # no state touched
    assert model.training
    if isinstance(model, RealNVP):
        cooler = model.sample(5, torch.Generator().manual_seed(3), temperature=0.5)
        assert cooler.shape == images.shape
