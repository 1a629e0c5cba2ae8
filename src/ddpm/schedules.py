"""Noise schedules: β_t and every quantity derived from it, in float64.

Indexing convention used throughout the project: code timestep ``t = 0 … T-1`` is the
seed's (and the DDPM paper's) step ``t+1``. So ``betas[0]`` is β_1, ``alpha_bar[t]`` is ᾱ at
the paper's step t+1, and ``alpha_bar[-1]`` is ᾱ_T. ``alpha_bar_prev[0] = 1`` stands for ᾱ_0.

Symbols: α_t = 1 − β_t, ᾱ_t = ∏_{s≤t} α_s, SNR_t = ᾱ_t / (1 − ᾱ_t), λ_t = log SNR_t / 2 (the
half log-SNR of DPM-Solver), σ_t = √((1 − ᾱ_t) / ᾱ_t) (the noise level of the equivalent
variance-exploding process, Karras et al. 2022).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ddpm.validation import require_choice, require_number, require_positive_int

SCHEDULE_NAMES = ("linear", "cosine", "sigmoid", "scaled_linear")


def linear_betas(num_timesteps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """β_t rising linearly from ``beta_start`` to ``beta_end`` (DDPM §4: 1e-4 → 0.02, T = 1000)."""
    return torch.linspace(beta_start, beta_end, num_timesteps, dtype=torch.float64)


def scaled_linear_betas(
    num_timesteps: int, beta_start: float = 0.00085, beta_end: float = 0.012
) -> torch.Tensor:
    """√β_t rising linearly from √beta_start to √beta_end: the schedule of latent diffusion
    (Rombach et al. 2022; diffusers' ``beta_schedule="scaled_linear"``)."""
    return torch.linspace(beta_start**0.5, beta_end**0.5, num_timesteps, dtype=torch.float64) ** 2


def cosine_alpha_bar(t: torch.Tensor, s: float = 0.008) -> torch.Tensor:
    """ᾱ(t) = f(t)/f(0), f(t) = cos²(π/2 · (t + s)/(1 + s)) for t ∈ [0, 1] (Nichol & Dhariwal eq. 17)."""
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    f0 = math.cos(s / (1 + s) * math.pi / 2) ** 2
    return f / f0


def cosine_betas(num_timesteps: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """β_t = min(1 − ᾱ(t/T) / ᾱ((t−1)/T), max_beta) (Nichol & Dhariwal §3.2, β capped at 0.999)."""
    grid = torch.arange(num_timesteps + 1, dtype=torch.float64) / num_timesteps
    alpha_bar = cosine_alpha_bar(grid, s)
    return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=max_beta)


def sigmoid_betas(num_timesteps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """β_t = beta_start + (beta_end − beta_start) · sigmoid(u_t), u_t evenly spaced on [−6, 6].

    The sigmoid schedule of GeoDiff (Xu et al. 2022), as diffusers' ``beta_schedule="sigmoid"``.
    """
    u = torch.linspace(-6, 6, num_timesteps, dtype=torch.float64)
    return beta_start + (beta_end - beta_start) * torch.sigmoid(u)


def rescale_zero_terminal_snr(betas: torch.Tensor) -> torch.Tensor:
    """Shift and scale √ᾱ so that ᾱ_T = 0 exactly while keeping √ᾱ_1 (Lin et al. 2023, Alg. 1).

    A model trained on such a schedule sees pure noise at its last step, as it does when sampling.
    ε-prediction is undefined at SNR = 0, so pair it with v- or x0-prediction.
    """
    sqrt_ab = torch.cumprod(1 - betas.double(), 0).sqrt()
    first, last = sqrt_ab[0].clone(), sqrt_ab[-1].clone()
    sqrt_ab = (sqrt_ab - last) * first / (first - last)
    alpha_bar = sqrt_ab**2
    alphas = torch.cat([alpha_bar[:1], alpha_bar[1:] / alpha_bar[:-1]])
    return 1 - alphas


@dataclass
class ScheduleConfig:
    """Which noise schedule to build."""

    schedule: str = field(
        default="linear", metadata={"help": "β schedule: linear, cosine, sigmoid or scaled_linear"}
    )
    num_timesteps: int = field(default=1000, metadata={"help": "number of diffusion steps T"})
    beta_start: float = field(default=1e-4, metadata={"help": "first β (linear, sigmoid, scaled_linear)"})
    beta_end: float = field(default=0.02, metadata={"help": "last β (linear, sigmoid, scaled_linear)"})
    cosine_s: float = field(default=0.008, metadata={"help": "offset s of the cosine schedule"})
    zero_terminal_snr: bool = field(
        default=False, metadata={"help": "rescale so that ᾱ_T = 0 (Lin et al. 2023)"}
    )

    def __post_init__(self) -> None:
        require_choice("schedule", self.schedule, SCHEDULE_NAMES)
        require_positive_int("num_timesteps", self.num_timesteps)
        require_number("beta_start", self.beta_start, 0, 1, low_open=True, high_open=True)
        require_number("beta_end", self.beta_end, self.beta_start, 1, high_open=True)
        require_number("cosine_s", self.cosine_s, 0)


@dataclass(eq=False)
class NoiseSchedule:
    """β_t and the derived per-step quantities, computed once in float64 (shape (T,) each).

    posterior_* are the coefficients of q(x_{t-1} | x_t, x_0) (DDPM eqs. 6–7):
    mean = posterior_mean_coef_x0 · x_0 + posterior_mean_coef_xt · x_t, variance β̃_t.
    """

    betas: torch.Tensor
    alphas: torch.Tensor = field(init=False)
    alpha_bar: torch.Tensor = field(init=False)
    alpha_bar_prev: torch.Tensor = field(init=False)
    sqrt_alpha_bar: torch.Tensor = field(init=False)
    sqrt_one_minus_alpha_bar: torch.Tensor = field(init=False)
    snr: torch.Tensor = field(init=False)
    log_snr: torch.Tensor = field(init=False)
    lambdas: torch.Tensor = field(init=False)
    sigmas: torch.Tensor = field(init=False)
    posterior_variance: torch.Tensor = field(init=False)
    posterior_log_variance_clipped: torch.Tensor = field(init=False)
    posterior_mean_coef_x0: torch.Tensor = field(init=False)
    posterior_mean_coef_xt: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        b = self.betas = self.betas.to(torch.float64)
        if b.ndim != 1 or len(b) == 0 or not torch.all((b > 0) & (b <= 1)):
            raise ValueError("betas must be a non-empty 1-D tensor with values in (0, 1]")
        self.alphas = 1 - b
        self.alpha_bar = torch.cumprod(self.alphas, 0)
        self.alpha_bar_prev = torch.cat([b.new_ones(1), self.alpha_bar[:-1]])
        self.sqrt_alpha_bar = self.alpha_bar.sqrt()
        self.sqrt_one_minus_alpha_bar = (1 - self.alpha_bar).sqrt()
        self.snr = self.alpha_bar / (1 - self.alpha_bar)
        self.log_snr = self.snr.log()
        self.lambdas = self.log_snr / 2
        self.sigmas = (1 / self.snr).sqrt()
        self.posterior_variance = b * (1 - self.alpha_bar_prev) / (1 - self.alpha_bar)
        # β̃_0 = 0; improved-diffusion's convention clips its log to log β̃_1.
        clipped = torch.cat([self.posterior_variance[1:2], self.posterior_variance[1:]])
        self.posterior_log_variance_clipped = clipped.log()
        self.posterior_mean_coef_x0 = b * self.alpha_bar_prev.sqrt() / (1 - self.alpha_bar)
        self.posterior_mean_coef_xt = (1 - self.alpha_bar_prev) * self.alphas.sqrt() / (1 - self.alpha_bar)

    @property
    def num_timesteps(self) -> int:
        return len(self.betas)

    @property
    def terminal_alpha_bar(self) -> float:
        """ᾱ_T: how much of x_0 survives at the last step (0 means pure noise)."""
        return float(self.alpha_bar[-1])


def betas_for(config: ScheduleConfig) -> torch.Tensor:
    """The β_t of a configuration, before any rescaling."""
    if config.schedule == "linear":
        return linear_betas(config.num_timesteps, config.beta_start, config.beta_end)
    if config.schedule == "cosine":
        return cosine_betas(config.num_timesteps, config.cosine_s)
    if config.schedule == "scaled_linear":
        return scaled_linear_betas(config.num_timesteps, config.beta_start, config.beta_end)
    return sigmoid_betas(config.num_timesteps, config.beta_start, config.beta_end)


def make_schedule(config: ScheduleConfig) -> NoiseSchedule:
    """Build the :class:`NoiseSchedule` a configuration describes."""
    betas = betas_for(config)
    if config.zero_terminal_snr:
        betas = rescale_zero_terminal_snr(betas)
    return NoiseSchedule(betas=betas)


def sigma_to_timestep(sigma: torch.Tensor, schedule: NoiseSchedule) -> torch.Tensor:
    """The (fractional) training timestep whose σ is ``sigma`` (float64): linear interpolation in
    log σ between the bracketing steps, clipped to [0, T−1]."""
    log_sigmas = schedule.sigmas.log()
    s = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1).clamp_min(1e-10).log()
    # log σ increases with t; find the bracketing pair
    idx = (torch.searchsorted(log_sigmas, s, right=True) - 1).clamp(0, len(log_sigmas) - 2)
    low, high = log_sigmas[idx], log_sigmas[idx + 1]
    return idx + ((s - low) / (high - low)).nan_to_num(0.0).clamp(0, 1)


def timestep_to_sigma(t: torch.Tensor, schedule: NoiseSchedule) -> torch.Tensor:
    """σ at a (fractional) timestep t ∈ [0, T−1], float64: log σ interpolated linearly between the
    neighbouring steps (the inverse of :func:`sigma_to_timestep`); exact at integer t."""
    t = torch.as_tensor(t, dtype=torch.float64).clamp(0, schedule.num_timesteps - 1)
    low = t.floor().long().clamp(max=schedule.num_timesteps - 1)
    high = (low + 1).clamp(max=schedule.num_timesteps - 1)
    w = t - low
    log_sigmas = schedule.sigmas.log()
    mixed = torch.exp((1 - w) * log_sigmas[low] + w * log_sigmas[high])
    return torch.where(w == 0, schedule.sigmas[low], mixed)


def respace(schedule: NoiseSchedule, timesteps: torch.Tensor) -> NoiseSchedule:
    """The Markov chain on an increasing subset τ of the timesteps (Nichol & Dhariwal §4).

    β'_i = 1 − ᾱ_{τ_i} / ᾱ_{τ_{i−1}} keeps ᾱ'_i = ᾱ_{τ_i}, so a model trained on the full chain
    is used unchanged on the short one (with its original timestep indices τ_i).
    """
    timesteps = torch.as_tensor(timesteps, dtype=torch.long)
    if len(timesteps) == 0 or torch.any(timesteps[1:] <= timesteps[:-1]):
        raise ValueError("respaced timesteps must be non-empty and strictly increasing")
    alpha_bar = schedule.alpha_bar[timesteps]
    prev = torch.cat([alpha_bar.new_ones(1), alpha_bar[:-1]])
    return NoiseSchedule(betas=1 - alpha_bar / prev)
