"""Objectives of the baseline models (:mod:`ddpm.models.baselines`), and likelihoods in bits/dim.

Likelihoods are of the 8-bit data: a density model of continuous y is evaluated on uniformly
dequantised y = (x + u)/256 · 2 − 1, u ~ U[0, 1)^D, and since every bin has width 2/256 in
[−1, 1] units, log P(x) ≥ E_u[log p(y)] + D log(2/256) (Theis et al. 2016; Ho et al. 2019, §3.1).
"""

from __future__ import annotations

import math

import torch

from ddpm.models.baselines import VAE, RealNVP
from ddpm.training.autoencoder_objective import discriminator_hinge_loss, generator_adversarial_loss

__all__ = [
    "bits_per_dim",
    "dequantize",
    "flow_negative_log_likelihood",
    "gan_discriminator_loss",
    "gan_generator_loss",
    "vae_bits_per_dim",
    "vae_negative_elbo",
]


def dequantize(x_uint8: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """y = (x + u)/256 · 2 − 1 with u ~ U[0, 1) drawn on the CPU from ``generator``: uint8 images
    → floats in [−1, 1), each value spread uniformly over its bin."""
    if x_uint8.dtype != torch.uint8:
        raise ValueError(f"dequantize takes uint8 images, got {x_uint8.dtype}")
    u = torch.rand(x_uint8.shape, generator=generator).to(x_uint8.device)
    return (x_uint8.float() + u) / 128.0 - 1.0


def bits_per_dim(neg_log_density: torch.Tensor, dims: int) -> torch.Tensor:
    """−log p(y) in nats per image (B,) of dequantised y in [−1, 1]^dims → bits/dim of the 8-bit
    data: (nll + dims · log(256/2)) / (dims · ln 2). A uniform density on [−1, 1]^D gives 8."""
    return (neg_log_density + dims * math.log(128.0)) / (dims * math.log(2.0))


# -- GAN: the hinge loss (Lim & Ye 2017), as in Miyato et al. 2018 ---------------------------------

gan_generator_loss = generator_adversarial_loss
"""−E_z[D(G(z))]: the generator's side of the hinge GAN."""


def gan_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """E_x[max(0, 1 − D(x))] + E_z[max(0, 1 + D(G(z)))] (Lim & Ye 2017), the discriminator's side.
    The autoencoder's :func:`discriminator_hinge_loss` is ½ of this (as in LDM), so it is doubled."""
    return 2.0 * discriminator_hinge_loss(real_logits, fake_logits)


# -- VAE: the negative ELBO (Kingma & Welling 2014, eq. 3) ----------------------------------------


def _vae_terms(
    model: VAE, x: torch.Tensor, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(−log p(x | z), KL(q(z | x) ‖ p(z))) in nats per image, (B,) each, with z ~ q(z | x):
    −log N(x; m(z), s² I) = Σ_pixels [(x − m)²/(2s²) + log s + ½ log 2π]."""
    mean, posterior = model(x, generator)
    log_s = model.log_sigma.float()
    squared = (x.float() - mean.float()).pow(2).flatten(1)
    nll = (0.5 * squared * torch.exp(-2 * log_s)).sum(dim=1) + squared.shape[1] * (
        log_s + 0.5 * math.log(2 * math.pi)
    )
    return nll, posterior.kl().float()


def vae_negative_elbo(
    model: VAE, x: torch.Tensor, generator: torch.Generator | None
) -> tuple[torch.Tensor, dict[str, float]]:
    """−ELBO = E_q[−log p(x | z)] + KL(q(z | x) ‖ N(0, I)) (β = 1), one z per image, in nats per
    dimension, averaged over the batch; ``x`` (B, C, H, W) in [−1, 1] (better dequantised, see
    :func:`dequantize`). Terms: "reconstruction" and "kl" (same units, summing to the loss) and
    "sigma", the decoder's s."""
    nll, kl = _vae_terms(model, x, generator)
    dims = x[0].numel()
    reconstruction, kl = nll.mean() / dims, kl.mean() / dims
    terms = {
        "reconstruction": reconstruction.item(),
        "kl": kl.item(),
        "sigma": model.log_sigma.exp().item(),
    }
    return reconstruction + kl, terms


def vae_bits_per_dim(model: VAE, x_uint8: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """−ELBO of dequantised ``x_uint8`` in bits/dim, per image (B,): an upper bound on the negative
    log-likelihood of the 8-bit data (a one-sample estimate of it; average over many)."""
    y = dequantize(x_uint8, generator)
    nll, kl = _vae_terms(model, y, generator)
    return bits_per_dim(nll + kl, y[0].numel())


# -- Flow: exact log-likelihood by the change of variables (Dinh et al. 2017, §3.1) ---------------


def flow_negative_log_likelihood(
    model: RealNVP, x_uint8: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """−log p(y) of dequantised ``x_uint8`` in bits/dim of the 8-bit data, per image (B,); its mean
    is the training loss. Exact for the flow given u, a bound on −log P(x) in expectation over u."""
    y = dequantize(x_uint8, generator)
    return bits_per_dim(-model.log_prob(y), y[0].numel())
