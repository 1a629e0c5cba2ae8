"""Progressive distillation (Salimans & Ho 2022, Algorithm 2): a student learns to take one DDIM step
where its teacher takes two; then it becomes the teacher and the number of steps halves again.

The steps live on the schedule's trailing grid: the N-step grid t_i = round(T − i T/N) − 1 is
exactly every other level of the 2N-step grid (for N a power of two dividing into T's binary
fraction), so the student's step t_i → t_{i+1} is the teacher's t_i → midpoint → t_{i+1}; after the
last level a step lands on the clean image. The student predicts v (well-conditioned at every noise
level, where ε is not at one step), starts from the teacher's weights, and is trained on the
truncated-SNR-weighted x_0 error; each round anneals the learning rate linearly to zero.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
from torch import nn

from ddpm.checkpoints import read_meta
from ddpm.errors import UserError
from ddpm.imaging import make_image_grid, save_image
from ddpm.process import predict_x0
from ddpm.process.distillation import ddim_step, progressive_target, truncated_snr_weight
from ddpm.samplers import SamplerConfig, sample
from ddpm.samplers.spacing import spaced_timesteps
from ddpm.schedules import NoiseSchedule
from ddpm.training.batches import batch_indices
from ddpm.training.config import TrainConfig
from ddpm.training.examples import PixelExamples
from ddpm.training.step_loop import StepLoop, check_finite
from ddpm.validation import InvalidValue, require_choice, require_int, require_number, require_positive_int

DISTILL_METHODS = ("progressive", "consistency")
CONSISTENCY_LOSSES = ("pseudo-huber", "l2")


def _power_of_two(key: str, value: int) -> None:
    require_positive_int(key, value)
    if value & (value - 1):
        raise InvalidValue(key, "must be a power of two (1, 2, 4, …)", value)


@dataclass
class DistillConfig:
    """How to distil: the method and its settings (progressive: step counts and optimiser steps per
    halving; consistency: the teacher's ODE levels, the target network's EMA and the distance)."""

    method: str = field(
        default="progressive",
        metadata={"help": "progressive (Salimans & Ho 2022) or consistency (Song et al. 2023, CD)"},
    )
    start_steps: int = field(
        default=32,
        metadata={"help": "progressive: student steps in the first round (the teacher takes twice)"},
    )
    final_steps: int = field(default=1, metadata={"help": "progressive: student steps after the last round"})
    round_steps: int = field(
        default=500, metadata={"help": "optimiser steps per halving (progressive) or in all (consistency)"}
    )
    levels: int = field(default=18, metadata={"help": "consistency: Karras σ levels N of the teacher's ODE"})
    sigma_max: float = field(default=80.0, metadata={"help": "consistency: the highest level (EDM's 80)"})
    target_ema: float = field(
        default=0.95, metadata={"help": "consistency: EMA decay μ of the target network"}
    )
    loss: str = field(default="pseudo-huber", metadata={"help": "consistency: pseudo-huber (iCT) or l2"})
    sample_steps: int = field(
        default=1, metadata={"help": "consistency: the student's default sampling steps"}
    )

    def __post_init__(self) -> None:
        require_choice("method", self.method, DISTILL_METHODS)
        _power_of_two("start_steps", self.start_steps)
        _power_of_two("final_steps", self.final_steps)
        require_positive_int("round_steps", self.round_steps)
        if self.final_steps > self.start_steps:
            raise InvalidValue(
                "final_steps", f"must be at most start_steps ({self.start_steps})", self.final_steps
            )
        require_int("levels", self.levels, 2)
        require_number("sigma_max", self.sigma_max, 0, low_open=True)
        require_number("target_ema", self.target_ema, 0, 1, high_open=True)
        require_choice("loss", self.loss, CONSISTENCY_LOSSES)
        require_positive_int("sample_steps", self.sample_steps)

    @property
    def rounds(self) -> int:
        """Progressive: halvings from start_steps to final_steps, plus the first round (1 for consistency)."""
        return (self.start_steps // self.final_steps).bit_length() if self.method == "progressive" else 1

    def student_steps(self, round_index: int) -> int:
        return self.start_steps >> round_index if self.method == "progressive" else self.sample_steps

    @property
    def total_steps(self) -> int:
        return self.rounds * self.round_steps


def distillation_grid(num_timesteps: int, steps: int) -> torch.Tensor:
    """The student's decreasing timesteps: the trailing grid of ``steps`` levels (t_0 = T − 1)."""
    return spaced_timesteps(num_timesteps, steps, "trailing").flip(0)


@dataclass(kw_only=True)
class DistillationRun:
    """A teacher, the student's starting weights and configuration, and how to distil."""

    distill: DistillConfig
    train: TrainConfig
    teacher: nn.Module
    teacher_prediction: str
    student: nn.Module  # starts as a copy of the teacher's network; predicts v
    schedule: NoiseSchedule
    full_config: dict  # the student's experiment configuration (its [sample] follows the rounds)
    teacher_identity: dict  # source and weights digest, recorded in every checkpoint
    config_defaults: dict = field(default_factory=dict)


def _vp(schedule: NoiseSchedule, t: torch.Tensor, like: torch.Tensor):
    shape = (-1,) + (1,) * (like.ndim - 1)
    alpha = schedule.sqrt_alpha_bar[t].to(like.dtype).reshape(shape)
    sigma = schedule.sqrt_one_minus_alpha_bar[t].to(like.dtype).reshape(shape)
    return alpha, sigma


class DistillationLoop(StepLoop):
    """What every distillation method shares over :class:`StepLoop`'s run folder, checkpoints,
    resume and time limit: the images, the student and its AdamW, the preview grid's noise."""

    model_type = "diffusion"
    description = "distill"

    def __init__(self, run: DistillationRun, images: torch.Tensor, out: Path, progress: bool):
        super().__init__(run.train, run.full_config, run.config_defaults, out, progress)
        self.run, self.dc = run, run.distill
        self.examples = PixelExamples(images)
        self.student = run.student
        self.opt = torch.optim.AdamW(self.student.parameters(), lr=run.train.lr, weight_decay=0.0)
        self.preview_noise = torch.randn(
            (run.train.sample_num, *images.shape[1:]),
            generator=torch.Generator().manual_seed(run.train.seed + 1),
        )

    def batch(self) -> torch.Tensor:
        """This step's clean images (the batch order is a function of seed and step)."""
        idx = batch_indices(len(self.examples), self.tc.batch_size, self.step, self.tc.seed)
        return self.examples.batch(idx, self.gen)


class ProgressiveDistillation(DistillationLoop):
    """Rounds of Alg. 2."""

    def __init__(self, run: DistillationRun, images: torch.Tensor, out: Path, progress: bool):
        super().__init__(run, images, out, progress)
        self.previous: nn.Module | None = None  # the teacher of rounds after the first
        self.round = 0

    # -- rounds ------------------------------------------------------------------------------------
    def round_of(self, step: int) -> int:
        return min(step // self.dc.round_steps, self.dc.rounds - 1)

    def enter_round(self, step: int) -> None:
        """Make the teacher of ``step``'s round: at a round's first step, the student so far."""
        r = self.round_of(step)
        if r > 0 and self.previous is None:
            self.previous = copy.deepcopy(self.student).eval().requires_grad_(False)
        elif r > self.round and step % self.dc.round_steps == 0:
            self.previous.load_state_dict(self.student.state_dict())
        self.round = r
        self.full_config["sample"] = {
            **self.full_config.get("sample", {}),
            "sampler": "ddim",
            "steps": self.dc.student_steps(r),
            "spacing": "trailing",
            "eta": 0.0,
        }

    def teacher_x0(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.previous is None:
            out = self.run.teacher(x, t.float())
            return predict_x0(out, x, t, self.run.schedule, self.run.teacher_prediction).clamp(-1, 1)
        v = self.previous(x, t.float())
        alpha, sigma = _vp(self.run.schedule, t, x)
        return (alpha * x - sigma * v).clamp(-1, 1)

    # -- StepLoop ------------------------------------------------------------------------------------
    def groups(self):
        groups = {"model": (self.student, self.opt)}
        if self.previous is not None:
            groups["previous"] = (self.previous, None)
        return groups

    def load(self, path: Path) -> None:
        recorded = read_meta(path).get("distillation", {}).get("round", 0)
        if recorded > 0:  # the checkpoint holds that round's teacher
            self.previous = copy.deepcopy(self.student).eval().requires_grad_(False)
        super().load(path)
        self.round = recorded
        self.enter_round(self.step)

    def checkpoint_meta(self) -> dict:
        return {
            "distillation": {
                "method": self.dc.method,
                "config": asdict(self.dc),
                "teacher": self.run.teacher_identity,
                "round": self.round,
                "rounds": self.dc.rounds,
                "student_steps": self.dc.student_steps(self.round),
            }
        }

    @torch.no_grad()
    def target(self, x0: torch.Tensor, i: torch.Tensor, eps: torch.Tensor):
        """(x_t, t, x̃): the noised images at the student's level i and the two-teacher-step target."""
        T, n = self.run.schedule.num_timesteps, self.dc.student_steps(self.round)
        fine = distillation_grid(T, 2 * n)  # the teacher's levels; the student's are every other one
        t, mid = fine[2 * i], fine[2 * i + 1]
        last = i == n - 1
        s = torch.where(last, torch.zeros_like(t), fine[(2 * i + 2).clamp(max=2 * n - 1)])
        alpha_t, sigma_t = _vp(self.run.schedule, t, x0)
        alpha_m, sigma_m = _vp(self.run.schedule, mid, x0)
        alpha_s, sigma_s = _vp(self.run.schedule, s, x0)
        mask = last.reshape(-1, 1, 1, 1)
        alpha_s, sigma_s = torch.where(mask, 1.0, alpha_s), torch.where(mask, 0.0, sigma_s)
        xt = alpha_t * x0 + sigma_t * eps
        xm = ddim_step(self.teacher_x0(xt, t), xt, alpha_t, sigma_t, alpha_m, sigma_m)
        xs = ddim_step(self.teacher_x0(xm, mid), xm, alpha_m, sigma_m, alpha_s, sigma_s)
        return xt, t, progressive_target(xt, xs, alpha_t, sigma_t, alpha_s, sigma_s)

    def train_step(self) -> dict[str, float]:
        self.enter_round(self.step)
        within = self.step - self.round * self.dc.round_steps
        lr = self.set_learning_rates(self.tc.lr * (1 - within / self.dc.round_steps))
        x0 = self.batch()
        n = self.dc.student_steps(self.round)
        i = torch.randint(0, n, (len(x0),), generator=self.gen)
        eps = torch.randn(x0.shape, generator=self.gen)
        xt, t, target = self.target(x0, i, eps)
        alpha, sigma = _vp(self.run.schedule, t, x0)
        v = self.student(xt, t.float())
        x0_hat = alpha * xt - sigma * v
        loss = (truncated_snr_weight(alpha, sigma) * (x0_hat - target).pow(2)).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.tc.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.student.parameters(), self.tc.grad_clip)
        self.opt.step()
        value = float(loss.detach())
        check_finite(value, self.step, self.last_saved)
        return {"loss": value, "lr": lr, "round": float(self.round), "student_steps": float(n)}

    @torch.no_grad()
    def sample_grid(self) -> None:
        n = self.dc.student_steps(self.round)
        config = SamplerConfig(sampler="ddim", steps=n, spacing="trailing", clip_x0=True)
        self.student.eval()
        x = sample(
            config, lambda x, t: self.student(x, t.float()), self.preview_noise, self.run.schedule, "v"
        )
        self.student.train()
        save_image(make_image_grid(x), self.out / "samples" / f"step-{self.step:07d}.png", scale=4)


def check_teacher(teacher: nn.Module, prediction_type: str) -> None:
    """Refuse teachers this method cannot distil, in one line."""
    config = getattr(teacher, "config", None)
    if config is None or type(teacher).__name__ != "UNet":
        raise UserError(
            "progressive distillation takes a plain U-Net teacher (no EDM or learned-variance wrapper)"
        )
    if config.num_classes or config.context_dim or config.cond_channels:
        raise UserError("progressive distillation takes an unconditional teacher for now")
    if prediction_type == "mu":
        raise UserError(
            "a mean-predicting teacher has no DDIM step between its training steps; use ε, x0 or v"
        )


def _like(name: str, default):
    """A field with TrainConfig's help text for ``name`` and its own default."""
    help_text = next(f.metadata["help"] for f in fields(TrainConfig) if f.name == name)
    return field(default=default, metadata={"help": help_text})


@dataclass
class DistillTraining:
    """The optimiser and bookkeeping settings of a distillation run (``[train]`` of ``ddpm distill``)."""

    lr: float = _like("lr", 1e-4)
    batch_size: int = _like("batch_size", 32)
    grad_clip: float = _like("grad_clip", 1.0)
    ema_decay: float = field(
        default=0.999, metadata={"help": "consistency: decay of the (warm-up) EMA the student samples with"}
    )
    seed: int = _like("seed", 0)
    num_threads: int = _like("num_threads", 0)
    log_every: int = _like("log_every", 25)
    sample_every: int = _like("sample_every", 250)
    sample_num: int = _like("sample_num", 16)
    checkpoint_every: int = _like("checkpoint_every", 250)
    keep_checkpoints: int = _like("keep_checkpoints", 3)
    time_limit_minutes: float = _like("time_limit_minutes", 0.0)
    tensorboard: bool = _like("tensorboard", False)

    def __post_init__(self) -> None:
        self.train_config(1)  # every check of TrainConfig, on these values

    def train_config(self, steps: int) -> TrainConfig:
        """The :class:`TrainConfig` the loop runs on: these settings, ``steps`` steps, no warm-up."""
        return TrainConfig(steps=steps, warmup_steps=0, precision="fp32", **asdict(self))


@dataclass
class DistillSettings:
    """The sections ``ddpm distill`` reads: ``[distill]`` and ``[train]``."""

    distill: DistillConfig = field(default_factory=DistillConfig)
    train: DistillTraining = field(default_factory=DistillTraining)
