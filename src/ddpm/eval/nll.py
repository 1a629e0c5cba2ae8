"""Negative log-likelihood in bits per dimension through the variational bound (DDPM eq. 5, 13).

bound = L_T + Σ_{t=2}^{T} L_{t−1} + L_0 with L_{t−1} = KL(q(x_{t−1} | x_t, x_0) ‖ p_θ(x_{t−1} | x_t))
and L_0 = −log p_θ(x_0 | x_1), the discretised Gaussian decoder. Each term is evaluated exactly at
every t (one network call per t and image), as in DDPM and improved-DDPM.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ddpm.errors import UserError
from ddpm.process import learned_log_variance, predict_x0, q_posterior_mean, q_sample
from ddpm.process.forward import extract
from ddpm.process.vlb import discretized_gaussian_log_likelihood, normal_kl, prior_kl, reverse_log_variance
from ddpm.runtime import progress_bar
from ddpm.samplers.common import Denoiser, split_output
from ddpm.schedules import NoiseSchedule


@dataclass(kw_only=True)
class BoundTerms:
    """Per-image terms in bits/dim: ``prior`` (N,), ``decoder`` (N,) and ``kl`` (N, T−1) for t = 2…T."""

    prior: np.ndarray
    decoder: np.ndarray
    kl: np.ndarray

    @property
    def total(self) -> np.ndarray:
        """The bound per image, bits/dim."""
        return self.prior + self.decoder + self.kl.sum(axis=1)


def variational_bound(
    denoise: Denoiser,
    x0: torch.Tensor,
    schedule: NoiseSchedule,
    prediction_type: str = "eps",
    variance: str = "beta_tilde",
    clip_x0: bool = True,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> BoundTerms:
    """Evaluate every term of the bound for a batch of images ``x0`` in [−1, 1] (256 levels). With
    ``variance`` learned, p_θ's variance at each step comes from the network's v output."""
    bounds = variational_bounds(
        denoise, x0, schedule, prediction_type, (variance,), clip_x0, generator, progress
    )
    return bounds[variance]


@torch.no_grad()
def variational_bounds(
    denoise: Denoiser,
    x0: torch.Tensor,
    schedule: NoiseSchedule,
    prediction_type: str,
    variances: Sequence[str],
    clip_x0: bool = True,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> dict[str, BoundTerms]:
    """The bound of :func:`variational_bound` under several reverse variances at once (learned, beta,
    beta_tilde): one network call per t and image serves all of them, since the variance changes
    only p_θ's σ², not its mean. Same noise, hence the same terms as separate calls."""
    n, dims = x0.shape[0], x0[0].numel()
    to_bits = 1 / (dims * math.log(2))
    fixed = {v: reverse_log_variance(schedule, v) for v in variances if v != "learned"}
    x0 = x0.double()
    kl = {v: np.zeros((n, schedule.num_timesteps - 1)) for v in variances}
    decoder = {v: np.zeros(n) for v in variances}
    for t in progress_bar(range(schedule.num_timesteps), desc="bound terms", enabled=progress, leave=False):
        noise = torch.randn(x0.shape, generator=generator, dtype=torch.float64).to(x0.device)
        xt = q_sample(x0, t, schedule, noise)
        out, v = split_output(denoise(xt.float(), torch.full((n,), t, device=x0.device)).double(), xt)
        if v is None and "learned" in variances:
            raise UserError(
                "variance learned needs a model trained with diffusion.learned_variance = true; "
                "use --variance beta or beta_tilde"
            )
        x0_pred = predict_x0(out, xt, t, schedule, prediction_type)
        if clip_x0:
            x0_pred = x0_pred.clamp(-1, 1)
        model_mean = q_posterior_mean(x0_pred, xt, t, schedule)
        if t > 0:
            true_mean = q_posterior_mean(x0, xt, t, schedule)
            true_logvar = extract(schedule.posterior_log_variance_clipped, t, xt)
        for variance in variances:
            if variance == "learned":
                model_logvar = learned_log_variance(v, t, schedule)
            else:
                model_logvar = extract(fixed[variance], t, xt)
            if t == 0:
                ll = discretized_gaussian_log_likelihood(x0, model_mean, 0.5 * model_logvar)
                decoder[variance] = -ll.flatten(1).sum(1).cpu().numpy() * to_bits
            else:
                term = normal_kl(true_mean, true_logvar, model_mean, model_logvar)
                kl[variance][:, t - 1] = term.flatten(1).sum(1).cpu().numpy() * to_bits
    prior = prior_kl(x0, schedule).flatten(1).sum(1).cpu().numpy() * to_bits
    return {v: BoundTerms(prior=prior, decoder=decoder[v], kl=kl[v]) for v in variances}
