"""DDIM inversion: run the deterministic DDIM ODE forwards, x_0 → x_T, so that DDIM (η = 0) on the
same timesteps maps x_T back to (nearly) x_0 (Song et al. 2021, §4.3; Mokady et al. 2023)."""

from __future__ import annotations

import torch

from ddpm.runtime import progress_bar
from ddpm.samplers.common import Denoiser, StepCallback, model_x0_eps
from ddpm.schedules import NoiseSchedule, respace


@torch.no_grad()
def ddim_invert(
    denoise: Denoiser,
    x0: torch.Tensor,
    schedule: NoiseSchedule,
    timesteps: torch.Tensor,
    *,
    prediction_type: str = "eps",
    callback: StepCallback | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Encode clean images along increasing ``timesteps`` τ_0 < … < τ_{K−1}.

    x_0 stands in for x_{τ_0} (the mirror of DDIM's last step, which returns x̂_0 from x_{τ_0});
    then x_{τ_i} = √ᾱ_{τ_i} x̂_0 + √(1 − ᾱ_{τ_i}) ε̂ with (x̂_0, ε̂) predicted at τ_{i−1}
    (DDIM eq. 12 with η = 0, run backwards). K − 1 network evaluations.
    """
    chain = respace(schedule, timesteps)
    x = x0
    for i in progress_bar(
        range(1, chain.num_timesteps), desc="ddim inversion", enabled=progress, leave=False
    ):
        t = timesteps[i - 1].to(x.device)
        x0_pred, eps = model_x0_eps(denoise, x, i - 1, t, chain, prediction_type, clip_x0=False)
        if callback is not None:
            callback(i - 1, t, x, x0_pred)
        ab = chain.alpha_bar[i].to(x.dtype)
        x = ab.sqrt() * x0_pred + (1 - ab).sqrt() * eps
    return x
