"""DPM-Solver (Lu et al. 2022a) and DPM-Solver++ (Lu et al. 2022b): exponential integrators of the
diffusion ODE in λ = log(α/σ), multistep (2M, 3M; SDE-DPM-Solver++ 2M) and single-step (2, 3).

``algorithm`` picks what is integrated: ``dpmsolver++`` the data prediction x̂_0 (DPM-Solver++),
``dpmsolver`` the noise prediction ε̂ (DPM-Solver), ``sde-dpmsolver++`` the data prediction along
the reverse SDE (Lu et al. 2022b, §4.2; first and second order). Step h = λ_t − λ_s > 0.
"""

from __future__ import annotations

import torch

from ddpm.runtime import progress_bar
from ddpm.samplers.common import NO_THRESHOLD, Denoiser, StepCallback, Threshold, predict_at
from ddpm.samplers.grid import NoiseGrid
from ddpm.samplers.noise import Generators, randn_like

ALGORITHMS = ("dpmsolver++", "dpmsolver", "sde-dpmsolver++")
SOLVER_TYPES = ("midpoint", "heun")


def first_order_update(x, m0, a_s, s_s, a_t, s_t, h, algorithm, noise=None):
    """One exponential-integrator step of order 1 (DPM-Solver++ eq. 5 / DPM-Solver eq. 3.7 = DDIM).

    dpmsolver++: x_t = (σ_t/σ_s) x − α_t (e^{−h} − 1) x̂_0
    dpmsolver:   x_t = (α_t/α_s) x − σ_t (e^{h} − 1) ε̂
    sde:         x_t = (σ_t/σ_s) e^{−h} x + α_t (1 − e^{−2h}) x̂_0 + σ_t √(1 − e^{−2h}) z
    """
    if algorithm == "dpmsolver++":
        return (s_t / s_s) * x - a_t * torch.expm1(-h) * m0
    if algorithm == "dpmsolver":
        return (a_t / a_s) * x - s_t * torch.expm1(h) * m0
    return (
        (s_t / s_s) * torch.exp(-h) * x
        - a_t * torch.expm1(-2 * h) * m0
        + s_t * (-torch.expm1(-2 * h)).sqrt() * noise
    )


def second_order_update(x, d0, d1, a_s, s_s, a_t, s_t, h, algorithm, solver_type, noise=None):
    """Order-2 step from value D0 and first difference D1 ≈ h · dm/dλ (DPM-Solver++ Alg. 2, 2M).

    midpoint keeps the paper's ½ (e^{−h} − 1) D1 term; heun uses the exact φ₂ coefficient.
    """
    if algorithm == "dpmsolver++":
        base = (s_t / s_s) * x - a_t * torch.expm1(-h) * d0
        if solver_type == "midpoint":
            return base - 0.5 * a_t * torch.expm1(-h) * d1
        return base + a_t * (torch.expm1(-h) / h + 1) * d1
    if algorithm == "dpmsolver":
        base = (a_t / a_s) * x - s_t * torch.expm1(h) * d0
        if solver_type == "midpoint":
            return base - 0.5 * s_t * torch.expm1(h) * d1
        return base - s_t * (torch.expm1(h) / h - 1) * d1
    base = (
        (s_t / s_s) * torch.exp(-h) * x
        - a_t * torch.expm1(-2 * h) * d0
        + s_t * (-torch.expm1(-2 * h)).sqrt() * noise
    )
    if solver_type == "midpoint":
        return base - 0.5 * a_t * torch.expm1(-2 * h) * d1
    return base + a_t * (torch.expm1(-2 * h) / (2 * h) + 1) * d1


def third_order_update(x, d0, d1, d2, a_s, s_s, a_t, s_t, h, algorithm, noise=None):
    """Order-3 step with D1 ≈ h m', D2 ≈ h² m''/2 (DPM-Solver++ 3M; DPM-Solver-3 coefficients φ₂, φ₃)."""
    if algorithm == "dpmsolver++":
        return (
            (s_t / s_s) * x
            - a_t * torch.expm1(-h) * d0
            + a_t * (torch.expm1(-h) / h + 1) * d1
            - a_t * ((torch.expm1(-h) + h) / h**2 - 0.5) * d2
        )
    if algorithm == "dpmsolver":
        return (
            (a_t / a_s) * x
            - s_t * torch.expm1(h) * d0
            - s_t * (torch.expm1(h) / h - 1) * d1
            - s_t * ((torch.expm1(h) - h) / h**2 - 0.5) * d2
        )
    e2 = torch.expm1(-2 * h)
    return (
        (s_t / s_s) * torch.exp(-h) * x
        - a_t * e2 * d0
        + a_t * (e2 / (2 * h) + 1) * d1
        + a_t * ((-e2 - 2 * h) / (2 * h) ** 2 - 0.5) * d2
        + s_t * (-e2).sqrt() * noise
    )


def _check(algorithm: str, solver_type: str, order: int, grid: NoiseGrid, max_order: int = 3) -> None:
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown DPM-Solver algorithm {algorithm!r}; choose from {', '.join(ALGORITHMS)}")
    if solver_type not in SOLVER_TYPES:
        raise ValueError(f"unknown solver type {solver_type!r}; choose midpoint or heun")
    if not 1 <= order <= max_order:
        raise ValueError(f"order must be 1 … {max_order}, got {order}")
    if algorithm == "dpmsolver" and grid.sigmas[-1] == 0:
        raise ValueError("noise-prediction DPM-Solver cannot step to σ = 0; use final level sigma_min")


def _model_output(algorithm, x0, eps):
    return eps if algorithm == "dpmsolver" else x0


@torch.no_grad()
def dpm_solver_multistep(
    denoise: Denoiser,
    x: torch.Tensor,
    grid: NoiseGrid,
    *,
    order: int = 2,
    algorithm: str = "dpmsolver++",
    solver_type: str = "midpoint",
    lower_order_final: bool = True,
    euler_at_final: bool = False,
    prediction_type: str = "eps",
    threshold: Threshold = NO_THRESHOLD,
    generator: Generators = None,
    callback: StepCallback | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Multistep DPM-Solver(++) of ``order`` (2M, 3M): each step reuses the previous outputs, one
    network evaluation per step (Lu et al. 2022b, Alg. 2 and §3.3).

    The first steps use lower orders until enough history exists; with ``lower_order_final``
    (and fewer than 15 steps) the last steps drop to first/second order too, and the step to
    σ = 0 is always first order, as in diffusers.
    """
    _check(algorithm, solver_type, order, grid)
    a, s, lam = grid.alphas, grid.vp_sigmas, grid.lambdas
    k = len(grid)
    history: list[torch.Tensor] = []
    for i in progress_bar(range(k), desc="dpm-solver", enabled=progress, leave=False):
        t = grid.timesteps[i].to(x.device)
        x0, eps = predict_at(denoise, x, t, a[i], s[i], prediction_type, threshold)
        if callback is not None:
            callback(i, t, x, x0)
        history = [*history, _model_output(algorithm, x0, eps)][-order:]
        last = i == k - 1
        lower_final = last and (euler_at_final or (lower_order_final and k < 15) or grid.sigmas[-1] == 0)
        lower_second = i == k - 2 and lower_order_final and k < 15
        use = 1 if (order == 1 or i < 1 or lower_final) else 2 if (order == 2 or i < 2 or lower_second) else 3
        noise = randn_like(x, generator) if algorithm == "sde-dpmsolver++" else None
        coef = [c.to(x.dtype) for c in (a[i], s[i], a[i + 1], s[i + 1])]
        h = (lam[i + 1] - lam[i]).to(x.dtype)
        m0 = history[-1]
        if use == 1:
            x = first_order_update(x, m0, *coef, h, algorithm, noise)
        elif use == 2:
            r0 = (lam[i] - lam[i - 1]).to(x.dtype) / h
            x = second_order_update(x, m0, (m0 - history[-2]) / r0, *coef, h, algorithm, solver_type, noise)
        else:
            r0 = (lam[i] - lam[i - 1]).to(x.dtype) / h
            r1 = (lam[i - 1] - lam[i - 2]).to(x.dtype) / h
            d1_0, d1_1 = (m0 - history[-2]) / r0, (history[-2] - history[-3]) / r1
            d1 = d1_0 + r0 / (r0 + r1) * (d1_0 - d1_1)
            d2 = (d1_0 - d1_1) / (r0 + r1)
            x = third_order_update(x, m0, d1, d2, *coef, h, algorithm, noise)
    return x


def singlestep_orders(
    num_steps: int, order: int, lower_order_final: bool = True, final_zero: bool = True
) -> list[int]:
    """Order used at each grid step by single-step DPM-Solver: groups [1, 2(, 3)] span ``order``
    grid intervals, ending with lower orders so that the groups fit (diffusers' schedule)."""
    k = num_steps
    if order == 1:
        orders = [1] * k
    elif order == 2:
        if lower_order_final:
            orders = [1, 2] * (k // 2 - 1) + [1, 1] if k % 2 == 0 else [1, 2] * (k // 2) + [1]
        else:
            orders = [1, 2] * (k // 2)
    else:
        if lower_order_final:
            if k % 3 == 0:
                orders = [1, 2, 3] * (k // 3 - 1) + [1, 2] + [1]
            elif k % 3 == 1:
                orders = [1, 2, 3] * (k // 3) + [1]
            else:
                orders = [1, 2, 3] * (k // 3) + [1, 2]
        else:
            orders = [1, 2, 3] * (k // 3)
    if len(orders) != k:
        raise ValueError(
            f"{k} steps cannot be split into single-step groups of order {order}; use lower_order_final"
        )
    if final_zero:
        orders[-1] = 1
    return orders


@torch.no_grad()
def dpm_solver_singlestep(
    denoise: Denoiser,
    x: torch.Tensor,
    grid: NoiseGrid,
    *,
    order: int = 2,
    algorithm: str = "dpmsolver++",
    solver_type: str = "midpoint",
    lower_order_final: bool = True,
    prediction_type: str = "eps",
    threshold: Threshold = NO_THRESHOLD,
    generator: Generators = None,
    callback: StepCallback | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Single-step DPM-Solver-2/3 (Lu et al. 2022a, Alg. 1–2): each group of ``order`` grid
    intervals is one high-order step from the group's start, whose intermediate model evaluations
    sit at the inner grid points (first- and second-order sub-steps get there).

    From a first level at σ = ∞ (zero terminal SNR, λ = −∞) the step is first order and the groups
    start at the next level: a group spanning λ = −∞ would divide ∞ by ∞ in its step ratios.
    """
    _check(algorithm, solver_type, order, grid)
    a, s, lam = grid.alphas, grid.vp_sigmas, grid.lambdas
    final_zero = bool(grid.sigmas[-1] == 0)
    if torch.isinf(grid.sigmas[0]) and len(grid) > 1:
        orders = [1, *singlestep_orders(len(grid) - 1, order, lower_order_final, final_zero)]
    else:
        orders = singlestep_orders(len(grid), order, lower_order_final, final_zero)
    history: list[torch.Tensor] = []
    start_x = x
    for i in progress_bar(range(len(grid)), desc="dpm-solver", enabled=progress, leave=False):
        t = grid.timesteps[i].to(x.device)
        x0, eps = predict_at(denoise, x, t, a[i], s[i], prediction_type, threshold)
        if callback is not None:
            callback(i, t, x, x0)
        history = [*history, _model_output(algorithm, x0, eps)][-order:]
        use = min(orders[i], len(history))
        if use == 1:
            start_x = x
        j = i - use + 1  # the group's first level
        noise = randn_like(x, generator) if algorithm == "sde-dpmsolver++" else None
        coef = [c.to(x.dtype) for c in (a[j], s[j], a[i + 1], s[i + 1])]
        h = (lam[i + 1] - lam[j]).to(x.dtype)
        if use == 1:
            x = first_order_update(start_x, history[-1], *coef, h, algorithm, noise)
        elif use == 2:
            r0 = (lam[i] - lam[j]).to(x.dtype) / h
            m0, m1 = history[-1], history[-2]
            x = second_order_update(start_x, m1, (m0 - m1) / r0, *coef, h, algorithm, solver_type, noise)
        else:
            r0 = (lam[i] - lam[j]).to(x.dtype) / h
            r1 = (lam[i - 1] - lam[j]).to(x.dtype) / h
            m0, m1, m2 = history[-1], history[-2], history[-3]
            d1_0, d1_1 = (m1 - m2) / r1, (m0 - m2) / r0
            if solver_type == "midpoint":
                x = second_order_update(start_x, m2, d1_1, *coef, h, algorithm, "heun", noise)
            else:
                d1 = (r0 * d1_0 - r1 * d1_1) / (r0 - r1)
                d2 = 2 * (d1_1 - d1_0) / (r0 - r1)
                x = third_order_update(start_x, m2, d1, d2, *coef, h, algorithm, noise)
    return x
