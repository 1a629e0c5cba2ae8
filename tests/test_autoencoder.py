"""The KL autoencoder: shapes, the KL term, the scale factor, the GAN terms, and learning."""

import math

import pytest
import torch

from ddpm.models.autoencoder import Autoencoder, AutoencoderConfig, DiagonalGaussian
from ddpm.models.patch_discriminator import PatchDiscriminator
from ddpm.training.autoencoder_objective import (
    adaptive_adversarial_weight,
    discriminator_hinge_loss,
    kl_loss,
    latent_scale_factor,
    psnr,
    reconstruction_loss,
)
from ddpm.training.autoencoder_trainer import measure_scale_factor


def _tiny(mult=(1, 2, 2), size=32, latent=3, attention=True) -> AutoencoderConfig:
    return AutoencoderConfig(
        image_size=size,
        latent_channels=latent,
        base_channels=8,
        channel_mult=mult,
        norm_groups=4,
        mid_attention=attention,
    )


@pytest.mark.parametrize("mult, f", [((1,), 1), ((1, 2), 2), ((1, 2, 2), 4), ((1, 2, 2, 2), 8)])
def test_encoder_and_decoder_shapes_for_each_downsampling_factor(mult, f):
    config = _tiny(mult, size=32, latent=4)
    assert config.downsampling_factor == f and config.latent_size == 32 // f
    model = Autoencoder(config)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    q = model.encode(x)
    assert q.mean.shape == q.std.shape == (2, 4, 32 // f, 32 // f)
    assert model.decode(q.sample(torch.Generator().manual_seed(0))).shape == x.shape
    x_hat, posterior = model(x)
    assert x_hat.shape == x.shape and posterior.mean.shape == q.mean.shape


def test_image_size_must_divide_by_the_factor():
    with pytest.raises(ValueError, match="not divisible by the downsampling factor 8"):
        AutoencoderConfig(image_size=36, channel_mult=(1, 2, 2, 2))


def test_kl_matches_the_closed_form_of_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mean, logvar = torch.randn(3, 2, 4, 4, generator=g), torch.randn(3, 2, 4, 4, generator=g)
    q = DiagonalGaussian(torch.cat([mean, logvar], dim=1))
    p = torch.distributions.Normal(mean, torch.exp(0.5 * logvar))
    prior = torch.distributions.Normal(torch.zeros_like(mean), torch.ones_like(mean))
    expected = torch.distributions.kl_divergence(p, prior).flatten(1).sum(1)
    assert torch.allclose(q.kl(), expected, atol=1e-5)
    assert torch.allclose(kl_loss(q), expected.mean(), atol=1e-5)
    # the standard normal itself has zero divergence
    assert float(DiagonalGaussian(torch.zeros(1, 4, 2, 2)).kl()) == 0.0


def test_posterior_samples_have_the_posterior_moments():
    mean = torch.full((1, 1, 100, 100), 0.7)
    logvar = torch.full((1, 1, 100, 100), math.log(0.25))
    z = DiagonalGaussian(torch.cat([mean, logvar], dim=1)).sample(torch.Generator().manual_seed(1))
    assert abs(float(z.mean()) - 0.7) < 0.02 and abs(float(z.std()) - 0.5) < 0.02


def test_scale_factor_gives_unit_variance_latents():
    torch.manual_seed(0)
    model = Autoencoder(_tiny()).eval()
    images = torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8)
    scale = measure_scale_factor(model, images, batch_size=16)
    with torch.no_grad():
        x = images.float() / 127.5 - 1
        z = model.encode(x).sample(torch.Generator().manual_seed(5))
    assert abs(float((scale * z).std()) - 1.0) < 0.05  # a fresh draw of the same images
    assert latent_scale_factor(3.0 * torch.randn(10_000, generator=torch.Generator().manual_seed(2))) == (
        pytest.approx(1 / 3, rel=0.02)
    )


def test_reconstruction_and_psnr_against_hand_computation():
    x = torch.zeros(2, 1, 2, 2)
    x_hat = torch.tensor([[[[0.5, -0.5], [0.0, 0.0]]], [[[1.0, 0.0], [0.0, 0.0]]]])
    assert float(reconstruction_loss(x_hat, x, "l1")) == pytest.approx((1.0 + 1.0) / 2)
    assert float(reconstruction_loss(x_hat, x, "l2")) == pytest.approx((0.5 + 1.0) / 2)
    mse = (0.25 + 0.25 + 1.0) / 8
    assert psnr(x_hat, x) == pytest.approx(10 * math.log10(4 / mse), rel=1e-5)


def test_hinge_losses_and_the_adaptive_weight():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    # real: max(0, 1-2)=0, max(0, 1-0.5)=0.5 → 0.25; fake: max(0, 1-2)=0, max(0, 1+0)=1 → 0.5
    assert float(discriminator_hinge_loss(real, fake)) == pytest.approx(0.5 * (0.25 + 0.5))
    w = torch.ones(3, requires_grad=True)
    rec, adv = (3 * w).sum(), (w * torch.tensor([1.0, 2.0, 2.0])).sum()
    expected = math.sqrt(27) / (3.0 + 1e-4)
    assert float(adaptive_adversarial_weight(rec, adv, w)) == pytest.approx(expected, rel=1e-6)
    logits = PatchDiscriminator(3, base_channels=8, layers=2)(torch.zeros(2, 3, 32, 32))
    assert logits.shape == (2, 1, 8, 8)


def test_a_tiny_autoencoder_overfits_a_few_images():
    torch.manual_seed(0)
    config = _tiny(mult=(1, 2), size=16, latent=4, attention=False)
    model = Autoencoder(config)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(4, 3, 4, 4, generator=g).repeat_interleave(4, -1).repeat_interleave(4, -2)) * 2 - 1
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    before = psnr(model(x, g)[0].detach(), x)
    for _ in range(300):
        x_hat, q = model(x, g)
        loss = reconstruction_loss(x_hat, x, "l1") + 1e-6 * kl_loss(q)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = psnr(model.decode(model.encode(x).mode()), x)
    assert before < 12 and after > 24, (before, after)
