"""Which of the T training timesteps a K-step sampler visits (returned increasing, as code indices).

The three spacings of Lin et al. 2023, Table 2 (and diffusers' ``timestep_spacing``):
``linspace`` rounds an even grid on [0, T−1]; ``leading`` takes every (T // K)-th step from 0;
``trailing`` counts back from T−1 in steps of T/K, so the first sampling step is always the
last training step (pure noise), which the other two miss.
"""

from __future__ import annotations

import numpy as np
import torch

SPACINGS = ("linspace", "leading", "trailing")


def spaced_timesteps(num_train_steps: int, num_steps: int, spacing: str = "trailing") -> torch.Tensor:
    """K increasing timestep indices out of T, by the named spacing."""
    T, K = num_train_steps, num_steps
    if not 1 <= K <= T:
        raise ValueError(f"number of sampling steps must be in [1, {T}], got {K}")
    if spacing == "linspace":
        steps = np.linspace(0, T - 1, K).round()
    elif spacing == "leading":
        steps = np.arange(K) * (T // K)
    elif spacing == "trailing":
        steps = np.round(np.arange(T, 0, -T / K)).astype(np.int64)[::-1] - 1
    else:
        raise ValueError(f"unknown timestep spacing {spacing!r}; choose from {', '.join(SPACINGS)}")
    steps = torch.as_tensor(np.asarray(steps, dtype=np.int64))
    if len(torch.unique(steps)) != K:
        raise ValueError(f"spacing {spacing!r} repeats timesteps for K={K}, T={T}")
    return steps
