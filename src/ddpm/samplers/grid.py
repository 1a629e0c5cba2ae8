"""The noise levels a sampler visits, as a :class:`NoiseGrid` of model timesteps and σ's.

Levels are given as σ = √((1−ᾱ)/ᾱ), the noise level of the equivalent variance-exploding
process (Karras et al. 2022); the variance-preserving pair is α = 1/√(1+σ²), σ_vp = σ α, and the
half-log-SNR of DPM-Solver is λ = log(α/σ_vp) = −log σ. A grid has K model timesteps (where the
network is called) and K+1 levels: the last is where sampling ends (0 = clean data).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ddpm.errors import UserError
from ddpm.samplers.spacing import spaced_timesteps
from ddpm.schedules import NoiseSchedule, sigma_to_timestep

FINAL_LEVELS = ("zero", "sigma_min")


@dataclass(frozen=True)
class NoiseGrid:
    """``timesteps`` (K,) float64, decreasing; ``sigmas`` (K+1,) float64, decreasing to the final level."""

    timesteps: torch.Tensor
    sigmas: torch.Tensor

    def __post_init__(self) -> None:
        if len(self.sigmas) != len(self.timesteps) + 1 or len(self.timesteps) == 0:
            raise ValueError("a grid needs K ≥ 1 timesteps and K + 1 noise levels")

    def __len__(self) -> int:
        return len(self.timesteps)

    @property
    def alphas(self) -> torch.Tensor:
        """α = √ᾱ = 1/√(1 + σ²) at each level."""
        return 1 / (1 + self.sigmas**2).sqrt()

    @property
    def vp_sigmas(self) -> torch.Tensor:
        """σ_vp = √(1 − ᾱ) = σ α at each level (1 where σ = ∞, zero terminal SNR)."""
        s = self.sigmas
        return torch.where(torch.isinf(s), torch.ones_like(s), s / (1 + s**2).sqrt())

    @property
    def lambdas(self) -> torch.Tensor:
        """λ = log(α / σ_vp) = −log σ (+∞ at σ = 0)."""
        return -torch.log(self.sigmas)


def _final_level(schedule: NoiseSchedule, final: str) -> float:
    if final not in FINAL_LEVELS:
        raise ValueError(f"unknown final level {final!r}; choose from {', '.join(FINAL_LEVELS)}")
    return 0.0 if final == "zero" else float(schedule.sigmas[0])


def discrete_grid(
    schedule: NoiseSchedule, num_steps: int, spacing: str = "trailing", final: str = "zero"
) -> NoiseGrid:
    """K training timesteps by ``spacing`` (see :func:`spaced_timesteps`), at their own σ's."""
    t = spaced_timesteps(schedule.num_timesteps, num_steps, spacing).flip(0)
    sigmas = torch.cat(
        [schedule.sigmas[t], torch.tensor([_final_level(schedule, final)], dtype=torch.float64)]
    )
    return NoiseGrid(timesteps=t.double(), sigmas=sigmas)


def karras_sigmas(sigma_min: float, sigma_max: float, num_steps: int, rho: float = 7.0) -> torch.Tensor:
    """σ_i = (σ_max^{1/ρ} + i/(K−1) (σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ, i = 0…K−1 (EDM eq. 5)."""
    ramp = torch.linspace(0, 1, num_steps, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (hi + ramp * (lo - hi)) ** rho


def logsnr_grid(
    schedule: NoiseSchedule, num_steps: int, final: str = "zero", round_timesteps: bool = False
) -> NoiseGrid:
    """Levels uniform in λ = −log σ between σ_max and σ_min (DPM-Solver's "logSNR" steps, Lu et al.
    2022a §3.3), at matching fractional (or rounded) timesteps."""
    if not torch.isfinite(schedule.sigmas[-1]):
        raise UserError(
            "logsnr spacing needs a finite σ_max and this zero-terminal-SNR schedule has σ_T = ∞; "
            "use --spacing trailing"
        )
    lam = torch.linspace(
        -float(schedule.sigmas[-1].log()), -float(schedule.sigmas[0].log()), num_steps, dtype=torch.float64
    )
    sigmas = torch.exp(-lam)
    t = sigma_to_timestep(sigmas, schedule)
    if round_timesteps:
        t = t.round()
    return NoiseGrid(
        timesteps=t,
        sigmas=torch.cat([sigmas, torch.tensor([_final_level(schedule, final)], dtype=torch.float64)]),
    )


def karras_grid(
    schedule: NoiseSchedule,
    num_steps: int,
    rho: float = 7.0,
    final: str = "zero",
    round_timesteps: bool = False,
) -> NoiseGrid:
    """Karras σ's between the schedule's σ_min and σ_max; the network is called at the matching
    fractional timesteps (as k-diffusion does), or at rounded ones (as diffusers' DPM-Solver does,
    which puts the network at a different σ than the solver assumes wherever levels crowd near t = 0)."""
    if not torch.isfinite(schedule.sigmas[-1]):
        raise UserError(
            "karras spacing needs a finite σ_max and this zero-terminal-SNR schedule has σ_T = ∞; "
            "use --spacing trailing"
        )
    sigmas = karras_sigmas(float(schedule.sigmas[0]), float(schedule.sigmas[-1]), num_steps, rho)
    t = sigma_to_timestep(sigmas, schedule)
    if round_timesteps:
        t = t.round()
    return NoiseGrid(
        timesteps=t,
        sigmas=torch.cat([sigmas, torch.tensor([_final_level(schedule, final)], dtype=torch.float64)]),
    )
