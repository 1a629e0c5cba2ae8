"""The training objective: DDPM Algorithm 1 (and its x_0 / v / μ variants), each image's squared error
weighted as the recipe says (:mod:`ddpm.training.loss_weights`), at integer or fractional t."""

from __future__ import annotations

import math

import torch

from ddpm.process import learned_log_variance, predict_x0, q_posterior_mean, q_sample, training_target
from ddpm.process.vlb import bound_term
from ddpm.samplers.common import split_output
from ddpm.schedules import NoiseSchedule
from ddpm.training.loss_weights import image_weights
from ddpm.training.noise_levels import training_noise


def denoising_loss(
    model_output_fn,
    x0: torch.Tensor,
    t: torch.Tensor,
    eps: torch.Tensor,
    schedule: NoiseSchedule,
    prediction_type: str = "eps",
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """‖target − f_θ(x_t, t)‖² with x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε, averaged over pixels and batch
    (L_simple, DDPM eq. 14); the target is ε, x_0, v or μ; t may be fractional (continuous time).
    ``weights`` (B,) scale each image's error (:func:`ddpm.training.loss_weights.image_weights`)."""
    xt = q_sample(x0, t, schedule, eps)
    target = training_target(x0, eps, t, schedule, prediction_type)
    out = model_output_fn(xt, t)
    if weights is None:
        return torch.nn.functional.mse_loss(out.float(), target.float())
    error = (out.float() - target.float()).pow(2)
    return (weights.float().to(error.device).reshape(-1, *[1] * (error.ndim - 1)) * error).mean()


def recipe_loss(model_output_fn, x0, t, eps, schedule: NoiseSchedule, diffusion, train) -> torch.Tensor:
    """:func:`denoising_loss` with the configured prediction type (``diffusion``, a
    :class:`~ddpm.process.DiffusionConfig`) and loss weighting (``train``, a ``TrainConfig``)."""
    weights = image_weights(
        t,
        schedule,
        train.loss_weighting,
        diffusion.prediction_type,
        train.min_snr_gamma,
        diffusion.sigma_data,
    )
    if diffusion.learned_variance:
        return hybrid_loss(
            model_output_fn, x0, t, eps, schedule, diffusion.prediction_type, weights, train.hybrid_vlb_weight
        )
    return denoising_loss(model_output_fn, x0, t, eps, schedule, diffusion.prediction_type, weights)


def hybrid_loss(
    model_output_fn,
    x0: torch.Tensor,
    t: torch.Tensor,
    eps: torch.Tensor,
    schedule: NoiseSchedule,
    prediction_type: str,
    weights: torch.Tensor | None,
    vlb_weight: float = 0.001,
) -> torch.Tensor:
    """L_hybrid = L_simple + λ L_vlb (Nichol & Dhariwal 2021, §3.1) for a network that outputs its
    prediction and v: L_simple on the prediction as :func:`denoising_loss`; L_vlb = T · L_t, the
    one-term estimate of the bound in bits per dimension, with the mean from the prediction under
    a stop-gradient, so that L_vlb trains v alone."""
    xt = q_sample(x0, t, schedule, eps)
    prediction, v = split_output(model_output_fn(xt, t), x0)
    if v is None:
        raise ValueError("the network has no v output; build it with diffusion.learned_variance")
    target = training_target(x0, eps, t, schedule, prediction_type)
    error = (prediction.float() - target.float()).pow(2)
    if weights is not None:
        error = weights.float().to(error.device).reshape(-1, *[1] * (error.ndim - 1)) * error
    x0_hat = predict_x0(prediction.detach().double(), xt.double(), t, schedule, prediction_type)
    mean = q_posterior_mean(x0_hat, xt.double(), t, schedule)
    logvar = learned_log_variance(v.double(), t, schedule)
    bits = bound_term(x0.double(), xt.double(), t, mean, logvar, schedule).flatten(1).mean(1) / math.log(2)
    return error.mean() + vlb_weight * schedule.num_timesteps * bits.mean().float()


def diffusion_loss(
    model_output_fn,
    x0: torch.Tensor,
    schedule: NoiseSchedule,
    generator: torch.Generator,
    prediction_type: str = "eps",
) -> torch.Tensor:
    """DDPM Algorithm 1: t ~ U, ε ~ N(0, I), x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε, loss ‖ε − ε_θ(x_t, t)‖².

    ``model_output_fn(x_t, t)`` is the network; with ``prediction_type`` x0 or v the regression
    target is x_0 or v instead of ε (see :func:`denoising_loss`).
    """
    t, eps = training_noise(x0, schedule, generator)
    return denoising_loss(model_output_fn, x0, t, eps, schedule, prediction_type)


def regression_output(model_output_fn, like: torch.Tensor) -> torch.Tensor:
    """f_θ(0, 0 | y): the non-diffusion baseline's answer for a batch shaped like ``like`` — the
    network asked for x directly from its conditioning input y (bound in ``model_output_fn``), in
    one pass from an all-zero x_t at t = 0."""
    t = torch.zeros(like.shape[0], dtype=torch.long, device=like.device)
    return model_output_fn(torch.zeros_like(like), t)


def regression_loss(model_output_fn, x0: torch.Tensor) -> torch.Tensor:
    """The non-diffusion baseline's loss ‖x_0 − f_θ(0, 0 | y)‖² (:func:`regression_output`); it
    converges to E[x | y], the blurry conditional mean."""
    return torch.nn.functional.mse_loss(regression_output(model_output_fn, x0).float(), x0.float())
