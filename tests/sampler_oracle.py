"""The shared oracle of the sampler parity tests: an analytic model, the noise, diffusers' loop."""

import torch

from ddpm.samplers import NoiseGrid

SHAPE = (2, 1, 4, 4)
THEIR_SCHEDULE = {"linear": "linear", "cosine": "squaredcos_cap_v2"}
THEIR_PREDICTION = {"eps": "epsilon", "x0": "sample", "v": "v_prediction"}


def gaussian_model(schedule, prediction_type, mu=0.2, std=0.5):
    """The exact prediction for N(mu, std²) data plus a nonlinear wobble; ᾱ interpolated in t."""
    table = schedule.alpha_bar

    def denoise(x, t):
        t = t.to(torch.float64)
        lo = t.floor().long().clamp(0, len(table) - 1)
        hi = (lo + 1).clamp(max=len(table) - 1)
        ab = (table[lo] + (t - lo) * (table[hi] - table[lo])).to(x.dtype)[:, None, None, None]
        x0 = (
            mu + ab.sqrt() * std**2 / (ab * std**2 + 1 - ab) * (x - ab.sqrt() * mu) + 0.05 * torch.tanh(3 * x)
        )
        eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()
        return {"eps": eps, "x0": x0, "v": ab.sqrt() * eps - (1 - ab).sqrt() * x0}[prediction_type]

    return denoise


def parity_tolerance(schedule_name, prediction_type):
    """diffusers' DPM/UniPC steps cast x to float32; with ε-prediction on the cosine schedule
    (ᾱ_T ≈ 4e-9 at the first step) x̂_0 = (x − σ ε)/α then loses about four digits there, so
    that one combination agrees to 1e-3 (see also the convergence tests, which use no oracle)."""
    return 1e-3 if (schedule_name, prediction_type) == ("cosine", "eps") else 1e-5


def their_grid(scheduler) -> NoiseGrid:
    return NoiseGrid(timesteps=scheduler.timesteps.double(), sigmas=scheduler.sigmas.double())


def run_diffusers(scheduler, denoise, x, noises=None, generator=None, scale_input=False):
    for i, t in enumerate(scheduler.timesteps):
        inp = scheduler.scale_model_input(x, t) if scale_input else x
        out = denoise(inp, torch.full((x.shape[0],), float(t), dtype=torch.float64))
        kwargs = {"variance_noise": noises[i]} if noises is not None else {}
        if generator is not None:
            kwargs["generator"] = generator
        x = scheduler.step(out, t, x, **kwargs).prev_sample.double()
    return x


def noise(seed=0):
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# Euler-type steps in diffusers run in float32 on x_ve, whose scale is σ_max ≈ 157 (linear) to 10⁴
# (cosine): their rounding is ≈ σ_max · 6e-8, so parity is checked relative to that scale.
EULER_RTOL = 1e-6
