"""What every sampler shares: the denoiser interface, x_0/ε predictions, trajectory recording."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ddpm.process import predict_eps, predict_x0, split_prediction
from ddpm.process.parameterization import eps_from_x0
from ddpm.schedules import NoiseSchedule

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``denoise(x_t, t) -> network output``: x_t (B, C, H, W), t (B,) training timesteps (integer-valued,
or fractional for samplers that visit levels between the training steps)."""

StepCallback = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], None]
"""``callback(i, t, x_t, x0_pred)`` after each network evaluation; ``i`` counts sampling steps."""


def split_output(out: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(prediction, v): a network with a learned variance returns 2C channels for C-channel x, the
    prediction first and then v (Nichol & Dhariwal 2021); any other returns (out, None)."""
    if out.ndim < 2 or x.ndim < 2:
        return out, None
    channels = x.shape[1]
    if out.shape[1] == 2 * channels:
        return out[:, :channels], out[:, channels:]
    return out, None


def model_x0_eps(
    denoise: Denoiser,
    x: torch.Tensor,
    index: int,
    t: torch.Tensor,
    schedule: NoiseSchedule,
    prediction_type: str,
    clip_x0: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Call the network once at training step ``t`` (= ``index`` of ``schedule``) → (x̂_0, ε̂).

    With ``clip_x0`` x̂_0 is clamped to [−1, 1] and ε̂ recomputed from it, so both stay consistent
    with x_t (improved-diffusion's convention).
    """
    out, _ = split_output(denoise(x, t.expand(x.shape[0])).to(x.dtype), x)
    x0 = predict_x0(out, x, index, schedule, prediction_type)
    if clip_x0:
        x0 = x0.clamp(-1, 1)
        return x0, eps_from_x0(x, index, x0, schedule)
    return x0, predict_eps(out, x, index, schedule, prediction_type)


class TrajectoryRecorder:
    """A step callback that keeps x_t (and the predicted x_0) every ``every`` steps, on the CPU."""

    def __init__(self, every: int = 1):
        self.every = every
        self.xt: list[torch.Tensor] = []
        self.x0: list[torch.Tensor] = []
        self.timesteps: list[int] = []

    def __call__(self, i: int, t: torch.Tensor, xt: torch.Tensor, x0: torch.Tensor) -> None:
        if i % self.every == 0:
            self.xt.append(xt.detach().cpu())
            self.x0.append(x0.detach().cpu())
            self.timesteps.append(int(t))


def dynamic_threshold(x0: torch.Tensor, percentile: float = 0.995, max_value: float = 1.0) -> torch.Tensor:
    """Imagen's dynamic thresholding (Saharia et al. 2022, §2.3): s = the ``percentile`` of |x̂_0|
    per image, clamped to [1, max_value]; x̂_0 ← clamp(x̂_0, −s, s) / s."""
    flat = x0.flatten(1)
    s = torch.quantile(flat.abs().float(), percentile, dim=1).to(x0.dtype).clamp(1, max_value)[:, None]
    return (flat.clamp(-s, s) / s).reshape(x0.shape)


@dataclass(frozen=True)
class Threshold:
    """What to do with x̂_0 before a solver uses it: nothing, clamp to [−1, 1], or dynamic thresholding."""

    clip: bool = False
    dynamic_percentile: float = 0.0
    max_value: float = 1.0

    def __call__(self, x0: torch.Tensor) -> torch.Tensor:
        if self.dynamic_percentile > 0:
            return dynamic_threshold(x0, self.dynamic_percentile, self.max_value)
        return x0.clamp(-1, 1) if self.clip else x0

    @property
    def active(self) -> bool:
        return self.clip or self.dynamic_percentile > 0


NO_THRESHOLD = Threshold()


def predict_at(
    denoise: Denoiser,
    x: torch.Tensor,
    t: torch.Tensor,
    alpha: torch.Tensor,
    sigma: torch.Tensor,
    prediction_type: str,
    threshold: Threshold = NO_THRESHOLD,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Call the network at (possibly fractional) timestep ``t`` on x = α x_0 + σ ε → (x̂_0, ε̂).

    After thresholding x̂_0, ε̂ is recomputed from it so that the pair stays consistent with x.
    """
    out, _ = split_output(denoise(x, t.expand(x.shape[0])).to(x.dtype), x)
    alpha, sigma = alpha.to(x.dtype), sigma.to(x.dtype)
    x0, eps = split_prediction(out, x, alpha, sigma, prediction_type)
    if threshold.active:
        x0 = threshold(x0)
        eps = (x - alpha * x0) / sigma
    return x0, eps
