"""Consistency distillation (Song et al. 2023, Algorithm 2): a consistency function f_θ learns to give
the same clean image from two adjacent points of one trajectory of the teacher's probability-flow
ODE; the second point is the teacher's Heun step down from the first.

Levels σ_1 < … < σ_N are Karras' (ρ = 7) between the schedule's σ_min and ``distill.sigma_max``;
for n ~ U{1 … N−1}: x_{n+1} = x_0 + σ_{n+1} z (VE form), x̂_n = Heun(x_{n+1}, σ_{n+1} → σ_n) with the
teacher's denoiser, loss d(f_θ(x_{n+1}, σ_{n+1}), f_θ⁻(x̂_n, σ_n)) with the target network θ⁻ an EMA
of θ (decay μ); d is iCT's pseudo-Huber √(‖a − b‖² + c²) − c, c = 0.00054 √dim, or the squared L2.
The student (:class:`~ddpm.models.preconditioning.ConsistencyFunction`) starts from the teacher's
weights; a second, slower EMA (``train.ema_decay``) is kept for sampling.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict
from pathlib import Path

import torch

from ddpm.imaging import make_image_grid, save_image
from ddpm.process import split_prediction
from ddpm.samplers import SamplerConfig, sample
from ddpm.samplers.grid import karras_sigmas
from ddpm.schedules import sigma_to_timestep
from ddpm.training.distillation import DistillationLoop, DistillationRun
from ddpm.training.ema import EMA
from ddpm.training.step_loop import check_finite


def pseudo_huber(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """√(‖a − b‖² + c²) − c per image with c = 0.00054 √d (Song & Dhariwal 2023, iCT §3.3)."""
    d = a[0].numel()
    c = 0.00054 * math.sqrt(d)
    return ((a - b).flatten(1).pow(2).sum(1) + c**2).sqrt() - c


class ConsistencyDistillation(DistillationLoop):
    """Algorithm 2."""

    def __init__(self, run: DistillationRun, images: torch.Tensor, out: Path, progress: bool):
        super().__init__(run, images, out, progress)
        self.target_net = copy.deepcopy(self.student).eval().requires_grad_(False)
        self.ema = EMA(self.student, run.train.ema_decay, run.train.ema, run.train.ema_sigma_rel)
        schedule = run.schedule
        top = min(self.dc.sigma_max, float(schedule.sigmas[-1]))
        self.sigmas = karras_sigmas(float(schedule.sigmas[0]), top, self.dc.levels).flip(0)  # increasing
        self.timesteps = sigma_to_timestep(self.sigmas, schedule)

    def groups(self):
        return {
            "model": (self.student, self.opt),
            "target": (self.target_net, None),
            "ema": (self.ema.model, None),
        }

    def checkpoint_meta(self) -> dict:
        return {
            "distillation": {
                "method": "consistency",
                "config": asdict(self.dc),
                "teacher": self.run.teacher_identity,
                "round": 0,
                "rounds": 1,
                "student_steps": self.dc.sample_steps,
            }
        }

    def _level(self, index: torch.Tensor, like: torch.Tensor):
        sigma = self.sigmas[index]
        alpha = 1 / (1 + sigma**2).sqrt()
        shape = (-1,) + (1,) * (like.ndim - 1)
        return (
            sigma.to(like.dtype).reshape(shape),
            alpha.to(like.dtype).reshape(shape),
            self.timesteps[index].to(like.dtype),
        )

    def teacher_denoise(self, x_ve: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """D(x; σ_index) of the teacher, from its prediction at the matching (fractional) timestep."""
        sigma, alpha, t = self._level(index, x_ve)
        xt = x_ve * alpha
        out = self.run.teacher(xt, t)
        return split_prediction(out.to(xt.dtype), xt, alpha, sigma * alpha, self.run.teacher_prediction)[0]

    @torch.no_grad()
    def heun_step(self, x_ve: torch.Tensor, n1: torch.Tensor) -> torch.Tensor:
        """The teacher's Heun step of the ODE dx/dσ = (x − D(x; σ))/σ from σ_{n+1} down to σ_n."""
        s1, _, _ = self._level(n1, x_ve)
        s0, _, _ = self._level(n1 - 1, x_ve)
        d1 = (x_ve - self.teacher_denoise(x_ve, n1)) / s1
        euler = x_ve + (s0 - s1) * d1
        d0 = (euler - self.teacher_denoise(euler, n1 - 1)) / s0
        return x_ve + (s0 - s1) * (d1 + d0) / 2

    def consistency(self, net, x_ve: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        _, alpha, t = self._level(index, x_ve)
        return net(x_ve * alpha, t)

    def train_step(self) -> dict[str, float]:
        lr = self.set_learning_rates()
        x0 = self.batch()
        n1 = torch.randint(1, self.dc.levels, (len(x0),), generator=self.gen)
        z = torch.randn(x0.shape, generator=self.gen)
        sigma1, _, _ = self._level(n1, x0)
        x1 = x0 + sigma1 * z
        x_prev = self.heun_step(x1, n1)
        with torch.no_grad():
            target = self.consistency(self.target_net, x_prev, n1 - 1)
        online = self.consistency(self.student, x1, n1)
        if self.dc.loss == "pseudo-huber":
            loss = pseudo_huber(online, target).mean()
        else:
            loss = (online - target).pow(2).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.tc.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.student.parameters(), self.tc.grad_clip)
        self.opt.step()
        with torch.no_grad():
            mu = self.dc.target_ema
            torch._foreach_lerp_(list(self.target_net.parameters()), list(self.student.parameters()), 1 - mu)
        self.ema.update(self.student, self.step)
        value = float(loss.detach())
        check_finite(value, self.step, self.last_saved)
        return {"loss": value, "lr": lr}

    @torch.no_grad()
    def sample_grid(self) -> None:
        config = SamplerConfig(sampler="consistency", steps=self.dc.sample_steps, spacing="trailing")
        x = sample(
            config,
            lambda x, t: self.ema.model(x, t),
            self.preview_noise,
            self.run.schedule,
            "x0",
            torch.Generator().manual_seed(self.tc.seed + 2),
        )
        save_image(make_image_grid(x), self.out / "samples" / f"step-{self.step:07d}.png", scale=4)
