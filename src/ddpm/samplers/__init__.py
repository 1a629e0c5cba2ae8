"""Samplers: pure functions over a ``denoise(x_t, t)`` callable; they know nothing of networks."""

from ddpm.samplers.ancestral import ddpm_sample
from ddpm.samplers.common import Denoiser, TrajectoryRecorder
from ddpm.samplers.config import SAMPLERS, SamplerConfig, sample
from ddpm.samplers.ddim import ddim_sample
from ddpm.samplers.spacing import SPACINGS, spaced_timesteps

__all__ = [
    "SAMPLERS",
    "SPACINGS",
    "Denoiser",
    "SamplerConfig",
    "TrajectoryRecorder",
    "ddim_sample",
    "ddpm_sample",
    "sample",
    "spaced_timesteps",
]
