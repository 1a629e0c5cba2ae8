"""What every sampler shares: the denoiser interface, x_0/ε predictions, trajectory recording."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ddpm.process import predict_eps, predict_x0
from ddpm.process.parameterization import eps_from_x0
from ddpm.schedules import NoiseSchedule

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``denoise(x_t, t) -> network output``: x_t (B, C, H, W), t (B,) long training-step indices."""

StepCallback = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], None]
"""``callback(i, t, x_t, x0_pred)`` after each network evaluation; ``i`` counts sampling steps."""


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
    out = denoise(x, t.expand(x.shape[0])).to(x.dtype)
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
