"""UniPC (Zhao et al. 2023): a unified predictor (UniP) and corrector (UniC) for the diffusion ODE.

The corrector reuses the network evaluation at the new point, so UniPC-p costs one evaluation per
step like a multistep solver while raising the order by one. ``variant`` picks B(h): ``bh1``
(B(h) = h) or ``bh2`` (B(h) = e^h − 1). Data prediction (as in UniPC's recommended setting).
"""

from __future__ import annotations

import math

import torch

from ddpm.runtime import progress_bar
from ddpm.samplers.common import NO_THRESHOLD, Denoiser, StepCallback, Threshold, predict_at
from ddpm.samplers.grid import NoiseGrid

VARIANTS = ("bh1", "bh2")


def unipc_coefficients(rks: torch.Tensor, h: torch.Tensor, order: int, variant: str):
    """R (order×order) with R_ij = r_j^i and b_i = i! φ_{i+1}(hh)/B(hh) (UniPC eq. 8, hh = −h), plus B(hh)
    and h φ₁(hh) = e^{hh} − 1."""
    hh = -h
    h_phi_1 = torch.expm1(hh)
    b_h = hh if variant == "bh1" else torch.expm1(hh)
    h_phi_k = h_phi_1 / hh - 1
    rows, b = [], []
    for i in range(1, order + 1):
        rows.append(rks ** (i - 1))
        b.append(h_phi_k * math.factorial(i) / b_h)
        h_phi_k = h_phi_k / hh - 1 / math.factorial(i + 1)
    return torch.stack(rows), torch.stack(b), b_h, h_phi_1


def _differences(history, lam, step_from, h):
    """r_k = (λ_{s_k} − λ_s0)/h and D_k = (m_k − m_0)/r_k for the older outputs."""
    rks, ds = [], []
    for k in range(1, len(history)):
        rk = (lam[step_from - k] - lam[step_from]).to(h.dtype) / h
        rks.append(rk)
        ds.append((history[-(k + 1)] - history[-1]) / rk)
    return rks, ds


def unipc_predict(x, history, lam, a, s, i, order, variant):
    """UniP-p from level i to i+1 (UniPC Alg. 1, data prediction)."""
    h = (lam[i + 1] - lam[i]).to(x.dtype)
    a_t, s_t, s_s = a[i + 1].to(x.dtype), s[i + 1].to(x.dtype), s[i].to(x.dtype)
    rks, ds = _differences(history[-order:], lam, i, h)
    R, b, b_h, h_phi_1 = unipc_coefficients(
        torch.stack([*rks, torch.ones((), dtype=x.dtype)]), h, order, variant
    )
    x_t = s_t / s_s * x - a_t * h_phi_1 * history[-1]
    if ds:
        rhos = torch.tensor([0.5], dtype=x.dtype) if order == 2 else torch.linalg.solve(R[:-1, :-1], b[:-1])
        x_t = x_t - a_t * b_h * sum(r * d for r, d in zip(rhos, ds, strict=True))
    return x_t


def unipc_correct(x_prev, x_t, model_t, history, lam, a, s, i, order, variant):
    """UniC-p: refine x at level i (reached from level i−1) with the evaluation ``model_t`` there."""
    h = (lam[i] - lam[i - 1]).to(x_t.dtype)
    a_t, s_t, s_s = a[i].to(x_t.dtype), s[i].to(x_t.dtype), s[i - 1].to(x_t.dtype)
    rks, ds = _differences(history[-order:], lam, i - 1, h)
    R, b, b_h, h_phi_1 = unipc_coefficients(
        torch.stack([*rks, torch.ones((), dtype=x_t.dtype)]), h, order, variant
    )
    rhos = torch.tensor([0.5], dtype=x_t.dtype) if order == 1 else torch.linalg.solve(R, b)
    m0 = history[-1]
    correction = sum(r * d for r, d in zip(rhos[:-1], ds, strict=True)) if ds else 0
    return s_t / s_s * x_prev - a_t * h_phi_1 * m0 - a_t * b_h * (correction + rhos[-1] * (model_t - m0))


@torch.no_grad()
def unipc_sample(
    denoise: Denoiser,
    x: torch.Tensor,
    grid: NoiseGrid,
    *,
    order: int = 2,
    variant: str = "bh2",
    lower_order_final: bool = True,
    use_corrector: bool = True,
    prediction_type: str = "eps",
    threshold: Threshold = NO_THRESHOLD,
    callback: StepCallback | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """UniPC-``order`` with B(h) = ``variant``; the corrector is applied after every step but the last
    (which has no further evaluation to use).

    From a first level at σ = ∞ (zero terminal SNR, λ = −∞) the step is first order and uncorrected,
    and that level's evaluation is left out of later differences: its step ratio r_k is infinite,
    and bh1's B(h) = h with it.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown UniPC variant {variant!r}; choose bh1 or bh2")
    if not 1 <= order <= 3:
        raise ValueError(f"UniPC order must be 1 … 3, got {order}")
    a, s, lam = grid.alphas, grid.vp_sigmas, grid.lambdas
    k = len(grid)
    history: list[torch.Tensor] = []
    x_prev, this_order = None, 1
    for i in progress_bar(range(k), desc="unipc", enabled=progress, leave=False):
        t = grid.timesteps[i].to(x.device)
        x0, _ = predict_at(denoise, x, t, a[i], s[i], prediction_type, threshold)
        if callback is not None:
            callback(i, t, x, x0)
        if i > 0 and torch.isinf(lam[i - 1]):  # just left σ = ∞: start afresh from here
            x_prev, history = None, []
        if use_corrector and x_prev is not None:
            x = unipc_correct(x_prev, x, x0, history, lam, a, s, i, this_order, variant)
        history = [*history, x0][-order:]
        this_order = min(order, k - i) if lower_order_final else order
        this_order = min(this_order, len(history))
        x_prev = x
        x = unipc_predict(x, history, lam, a, s, i, this_order, variant)
    return x
