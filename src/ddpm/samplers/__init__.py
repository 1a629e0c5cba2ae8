"""Samplers: pure functions over a ``denoise(x_t, t)`` callable; they know nothing of networks."""

from ddpm.samplers.ancestral import ddpm_sample
from ddpm.samplers.common import Denoiser, Threshold, TrajectoryRecorder, dynamic_threshold
from ddpm.samplers.config import SAMPLERS, SamplerConfig, make_grid, sample, sample_on_grid
from ddpm.samplers.ddim import ddim_sample
from ddpm.samplers.dpm_solver import dpm_solver_multistep, dpm_solver_singlestep
from ddpm.samplers.grid import NoiseGrid, discrete_grid, karras_grid, karras_sigmas, logsnr_grid
from ddpm.samplers.guidance import classifier_free_guidance, guided_denoiser
from ddpm.samplers.inversion import ddim_invert
from ddpm.samplers.karras import euler_ancestral_sample, euler_sample, heun_sample
from ddpm.samplers.noise import Generators, image_generators, image_seed, randn, randn_like
from ddpm.samplers.spacing import SPACINGS, spaced_timesteps
from ddpm.samplers.table import SAMPLER_TABLE, SamplerEntry
from ddpm.samplers.unipc import unipc_sample

__all__ = [
    "SAMPLERS",
    "SAMPLER_TABLE",
    "SPACINGS",
    "Denoiser",
    "Generators",
    "NoiseGrid",
    "SamplerConfig",
    "SamplerEntry",
    "Threshold",
    "TrajectoryRecorder",
    "classifier_free_guidance",
    "ddim_invert",
    "ddim_sample",
    "ddpm_sample",
    "discrete_grid",
    "dpm_solver_multistep",
    "dpm_solver_singlestep",
    "dynamic_threshold",
    "euler_ancestral_sample",
    "euler_sample",
    "guided_denoiser",
    "heun_sample",
    "image_generators",
    "image_seed",
    "karras_grid",
    "karras_sigmas",
    "logsnr_grid",
    "make_grid",
    "randn",
    "randn_like",
    "sample",
    "sample_on_grid",
    "spaced_timesteps",
    "unipc_sample",
]
