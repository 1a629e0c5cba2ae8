"""The fixed diffusion process: forward noising, the true posterior, parameterisations, the bound."""

from ddpm.process.config import DiffusionConfig
from ddpm.process.forward import extract, q_sample, q_step_sample
from ddpm.process.parameterization import (
    PREDICTION_TYPES,
    eps_denoiser_from_mean,
    eps_from_x0,
    mean_from_x0,
    predict_eps,
    predict_x0,
    split_prediction,
    training_target,
    v_from_x0_eps,
    x0_from_eps,
    x0_from_mean,
    x0_from_v,
)
from ddpm.process.posterior import (
    VARIANCE_TYPES,
    learned_log_variance,
    q_posterior_mean,
    q_posterior_variance,
    reverse_mean_from_eps,
    reverse_variance,
)

__all__ = [
    "DiffusionConfig",
    "PREDICTION_TYPES",
    "VARIANCE_TYPES",
    "eps_denoiser_from_mean",
    "eps_from_x0",
    "learned_log_variance",
    "mean_from_x0",
    "extract",
    "predict_eps",
    "predict_x0",
    "q_posterior_mean",
    "q_posterior_variance",
    "q_sample",
    "q_step_sample",
    "reverse_mean_from_eps",
    "reverse_variance",
    "split_prediction",
    "training_target",
    "v_from_x0_eps",
    "x0_from_eps",
    "x0_from_mean",
    "x0_from_v",
]
