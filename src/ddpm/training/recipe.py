"""Checks that a training recipe's choices fit the diffusion process they train (one line each)."""

from __future__ import annotations

from ddpm.errors import UserError
from ddpm.process.config import DiffusionConfig
from ddpm.training.config import TrainConfig


def check_recipe(train: TrainConfig, diffusion: DiffusionConfig) -> None:
    """Refuse combinations of noise levels, loss weighting and prediction type that have no meaning."""
    if train.objective != "diffusion":
        return
    if diffusion.prediction_type == "mu" and train.loss_weighting not in ("simple", "vlb"):
        raise UserError(
            f"train.loss_weighting {train.loss_weighting} weighs by SNR and a mean-predicting model "
            "(diffusion.prediction_type mu) has no SNR form; use simple or vlb"
        )
    if train.noise_levels == "log-normal" and diffusion.prediction_type == "mu":
        raise UserError(
            "a mean-predicting model (diffusion.prediction_type mu) trains on the discrete steps only; "
            "use train.noise_levels = uniform"
        )
    if train.noise_levels == "log-normal" and diffusion.learned_variance:
        raise UserError(
            "a learned variance is trained on the bound's discrete steps; use train.noise_levels = uniform"
        )
    if train.noise_levels == "log-normal" and diffusion.zero_terminal_snr:
        raise UserError(
            "train.noise_levels = log-normal needs a finite σ_max; drop diffusion.zero_terminal_snr "
            "or use uniform noise levels"
        )
