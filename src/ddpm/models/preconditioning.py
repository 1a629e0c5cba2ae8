"""EDM preconditioning as a wrapper around a network (Karras et al. 2022, §5 and Table 1).

:class:`EDMPreconditioned` holds a raw network F (the U-Net) and is itself an x_0-predicting model of
the schedule's timesteps, so every sampler, guidance and metric runs it unchanged: at a (fractional)
timestep t it takes σ = σ(t) of the schedule, x = x_t / α (the VE form of x_t) and returns the
denoiser D(x; σ) = c_skip x + c_out F(c_in x; c_noise) (:func:`ddpm.process.edm.edm_coefficients`).
Training may call :meth:`EDMPreconditioned.denoise` at any σ directly (EDM's log-normal σ's).
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from ddpm.models.unet import UNet, UNetConfig
from ddpm.process.config import DiffusionConfig
from ddpm.process.consistency import consistency_skip
from ddpm.process.edm import edm_coefficients
from ddpm.schedules import NoiseSchedule, make_schedule, timestep_to_sigma

NOISE_INPUT_SCALE = 1000.0
"""F sees 1000 c_noise = 250 ln σ as its "timestep": the sinusoidal embedding's frequencies are laid
out for DDPM's t ∈ [0, 1000), and ¼ ln σ alone spans only about ±1.5 over the σ's in use."""


def _per_image(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.to(device=like.device, dtype=like.dtype).reshape(-1, *([1] * (like.ndim - 1)))


class NetworkWrapper(nn.Module):
    """A parameterisation around a raw network ``net`` on ``schedule``'s noise levels: its weights
    are ``net``'s (under ``net.``) and every other attribute (config, blocks, class table) is too."""

    def __init__(self, net: nn.Module, schedule: NoiseSchedule, sigma_data: float):
        super().__init__()
        if not torch.isfinite(schedule.sigmas[-1]):
            raise ValueError(f"{type(self).__name__} needs a finite σ_max (no zero-terminal-SNR schedule)")
        self.net, self.schedule, self.sigma_data = net, schedule, float(sigma_data)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "net":
                raise
            return getattr(self.net, name)

    @property
    def gradient_checkpointing(self) -> bool:
        return self.net.gradient_checkpointing

    @gradient_checkpointing.setter
    def gradient_checkpointing(self, value: bool) -> None:
        self.net.gradient_checkpointing = value


class EDMPreconditioned(NetworkWrapper):
    """D(x; σ) = c_skip(σ) x + c_out(σ) F(c_in(σ) x; c_noise(σ)) around ``net``, answering as an x_0
    prediction at the timesteps of ``schedule``."""

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor, **conditioning) -> torch.Tensor:
        """D(x; σ) for x = x_0 + σ n (EDM eq. 7), one σ per image; coefficients in float64."""
        c_skip, c_out, c_in, c_noise = edm_coefficients(sigma.detach().double().cpu(), self.sigma_data)
        noise_input = (c_noise * NOISE_INPUT_SCALE).to(device=x.device, dtype=torch.float32)
        raw = self.net(_per_image(c_in, x) * x, noise_input, **conditioning)
        return _per_image(c_skip, x) * x + _per_image(c_out, x) * raw.to(x.dtype)

    def forward(self, xt: torch.Tensor, t: torch.Tensor, **conditioning) -> torch.Tensor:
        """x̂_0 at VP input x_t = α x_0 + σ_vp ε and (fractional) timestep t: D(x_t/α; σ(t))."""
        t = torch.as_tensor(t).reshape(-1).expand(xt.shape[0])
        sigma = timestep_to_sigma(t.detach().cpu(), self.schedule)
        alpha = 1 / (1 + sigma**2).sqrt()
        return self.denoise(xt / _per_image(alpha, xt), sigma, **conditioning)


class ConsistencyFunction(NetworkWrapper):
    """f(x; σ) = c_skip(σ) x + (1 − c_skip(σ)) D(x; σ) (:func:`~ddpm.process.consistency.consistency_skip`,
    σ_min the schedule's first level) around a v-predicting ``net``: D = α x_t − σ_vp v(x_t, t).
    It answers as an x_0 prediction at the schedule's (fractional) timesteps, f(x_t/α; σ(t)), and
    f(x, σ_min) = x exactly — the boundary condition of a consistency model (Song et al. 2023)."""

    def __init__(self, net: nn.Module, schedule: NoiseSchedule, sigma_data: float):
        super().__init__(net, schedule, sigma_data)
        self.sigma_min = float(schedule.sigmas[0])

    def forward(self, xt: torch.Tensor, t: torch.Tensor, **conditioning) -> torch.Tensor:
        t = torch.as_tensor(t).reshape(-1).expand(xt.shape[0])
        sigma = timestep_to_sigma(t.detach().cpu(), self.schedule)
        alpha = 1 / (1 + sigma**2).sqrt()
        skip = consistency_skip(sigma, self.sigma_min, self.sigma_data)
        a, s, c = (_per_image(v, xt) for v in (alpha, sigma * alpha, skip))
        denoised = a * xt - s * self.net(xt, t, **conditioning).to(xt.dtype)
        return c * (xt / a) + (1 - c) * denoised


def diffusion_network(model: UNetConfig, diffusion: DiffusionConfig) -> nn.Module:
    """The configured model: a U-Net (with twice the output channels when it learns its variance:
    the prediction, then v), or a U-Net inside EDM preconditioning."""
    if diffusion.learned_variance:
        return UNet(replace(model, out_channels=2 * (model.out_channels or model.in_channels)))
    net = UNet(model)
    if diffusion.preconditioning == "edm":
        return EDMPreconditioned(net, make_schedule(diffusion), diffusion.sigma_data)
    if diffusion.preconditioning == "consistency":
        return ConsistencyFunction(net, make_schedule(diffusion), diffusion.sigma_data)
    return net
