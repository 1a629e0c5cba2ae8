"""Settings of the training loop (optimiser, schedule of the learning rate, EMA, logging, checkpoints)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ddpm.runtime import COMPILE_MODES, PRECISIONS
from ddpm.training.ema import EMA_KINDS
from ddpm.training.loss_weights import LOSS_WEIGHTINGS
from ddpm.training.noise_levels import NOISE_LEVELS
from ddpm.validation import InvalidValue, require_choice, require_int, require_number, require_positive_int

LR_SCHEDULES = ("constant", "cosine")
OBJECTIVES = ("diffusion", "regression", "autoencoder", "baseline")


@dataclass
class TrainConfig:
    """How to train: Algorithm 1 with AdamW, warm-up, clipping and EMA, plus bookkeeping."""

    steps: int = field(default=10_000, metadata={"help": "optimiser steps in total"})
    objective: str = field(
        default="diffusion",
        metadata={
            "help": "diffusion (Algorithm 1); regression: predict x from the condition in one pass; "
            "autoencoder: train the KL autoencoder of [autoencoder] for latent diffusion; "
            "baseline: train the GAN, VAE or flow of [baseline]"
        },
    )
    loss_weighting: str = field(
        default="simple",
        metadata={
            "help": "simple: the prediction's own MSE at every level (DDPM's L_simple); vlb: each step "
            "as the true variational bound weights it; min-snr: min(SNR, γ) on the x0 error (Hang et "
            "al. 2023); edm: EDM's λ(σ); snr+1: the v-MSE for any target"
        },
    )
    hybrid_vlb_weight: float = field(
        default=0.001, metadata={"help": "λ of L_hybrid = L_simple + λ L_vlb (learned variance only)"}
    )
    min_snr_gamma: float = field(default=5.0, metadata={"help": "γ of the min-snr weighting"})
    noise_levels: str = field(
        default="uniform",
        metadata={
            "help": "uniform: t ~ U{0…T−1} (DDPM); log-normal: ln σ ~ N(mean, std²) as fractional "
            "timesteps (EDM)"
        },
    )
    log_normal_mean: float = field(default=-1.2, metadata={"help": "P_mean of the log-normal σ's"})
    log_normal_std: float = field(default=1.2, metadata={"help": "P_std of the log-normal σ's"})
    batch_size: int = field(default=64, metadata={"help": "images per optimiser step, over all processes"})
    grad_accum_steps: int = field(
        default=1, metadata={"help": "micro-batches per step (same result, less memory)"}
    )
    grad_checkpointing: bool = field(
        default=False, metadata={"help": "recompute activations in the backward pass (less memory)"}
    )
    lr: float = field(default=2e-4, metadata={"help": "peak AdamW learning rate"})
    warmup_steps: int = field(default=100, metadata={"help": "linear learning-rate warm-up steps"})
    lr_schedule: str = field(default="constant", metadata={"help": "after warm-up: constant or cosine"})
    min_lr_ratio: float = field(default=0.1, metadata={"help": "cosine schedule ends at lr × this"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    adam_beta2: float = field(default=0.999, metadata={"help": "AdamW β₂"})
    cond_drop_prob: float = field(
        default=0.1, metadata={"help": "chance of training a sample without its label (guidance)"}
    )
    hflip: bool = field(default=False, metadata={"help": "random horizontal flips of training images"})
    grad_clip: float = field(default=1.0, metadata={"help": "clip the gradient norm to this; 0 = off"})
    ema: str = field(
        default="warmup",
        metadata={
            "help": "warmup: decay min(ema_decay, (1+n)/(10+n)); fixed: ema_decay throughout; power: "
            "EDM2's power-function EMA of width ema_sigma_rel"
        },
    )
    ema_decay: float = field(default=0.9999, metadata={"help": "EMA decay of the weights (warmup, fixed)"})
    ema_sigma_rel: float = field(
        default=0.05, metadata={"help": "width of the power EMA relative to the training length"}
    )
    ema_snapshot_every: int = field(
        default=0,
        metadata={
            "help": "steps between snapshots of two power EMAs (σ_rel 0.05 and 0.10) in OUT/ema-snapshots/, "
            "from which 'ddpm ema' makes an EMA of any width after training; 0 = off"
        },
    )
    precision: str = field(default="auto", metadata={"help": "auto (bf16 where native), fp32 or bf16"})
    channels_last: bool = field(default=False, metadata={"help": "channels_last memory format"})
    compile: str = field(
        default="auto", metadata={"help": "torch.compile the network: auto (on CUDA only), on or off"}
    )
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda or cuda:N"})
    num_threads: int = field(default=0, metadata={"help": "CPU threads; 0 = PyTorch's default"})
    seed: int = field(default=0, metadata={"help": "seed of every random draw (data order, t, ε)"})
    log_every: int = field(default=50, metadata={"help": "steps between lines of log.jsonl"})
    sample_every: int = field(default=1000, metadata={"help": "steps between sample grids; 0 = off"})
    sample_num: int = field(default=16, metadata={"help": "images per periodic sample grid"})
    sample_steps: int = field(default=100, metadata={"help": "sampler steps for periodic grids"})
    checkpoint_every: int = field(default=1000, metadata={"help": "steps between checkpoints"})
    checkpoint_every_minutes: float = field(
        default=0.0,
        metadata={"help": "also save each time this many minutes of training have passed; 0 = off"},
    )
    keep_checkpoints: int = field(
        default=3, metadata={"help": "how many recent checkpoints to keep; 0 = all"}
    )
    time_limit_minutes: float = field(
        default=0.0, metadata={"help": "stop (and save) after this many minutes; 0 = no limit"}
    )
    tensorboard: bool = field(
        default=False,
        metadata={"help": "also write the logged numbers as TensorBoard event files in OUT/tensorboard/"},
    )
    init_from: str = field(
        default="",
        metadata={
            "help": "start from these weights (checkpoint, run folder or pretrained name; the same "
            "network, the middle block's order aside) with a fresh optimiser: fine-tuning"
        },
    )

    def __post_init__(self) -> None:
        require_choice("objective", self.objective, OBJECTIVES)
        require_choice("loss_weighting", self.loss_weighting, LOSS_WEIGHTINGS)
        require_choice("noise_levels", self.noise_levels, NOISE_LEVELS)
        require_choice("ema", self.ema, EMA_KINDS)
        if self.loss_weighting == "vlb" and self.noise_levels != "uniform":
            raise InvalidValue(
                "loss_weighting", "vlb weights the discrete steps; use it with noise_levels = uniform", "vlb"
            )
        require_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        require_choice("precision", self.precision, PRECISIONS)
        require_choice("compile", self.compile, COMPILE_MODES)
        for name in (
            "steps",
            "batch_size",
            "grad_accum_steps",
            "log_every",
            "checkpoint_every",
            "sample_num",
            "sample_steps",
        ):
            require_positive_int(name, getattr(self, name))
        for name in (
            "warmup_steps",
            "sample_every",
            "keep_checkpoints",
            "num_threads",
            "seed",
            "ema_snapshot_every",
        ):
            require_int(name, getattr(self, name), 0)
        require_number("lr", self.lr, 0, low_open=True)
        require_number("min_lr_ratio", self.min_lr_ratio, 0, 1)
        require_number("weight_decay", self.weight_decay, 0)
        require_number("adam_beta2", self.adam_beta2, 0, 1, high_open=True)
        require_number("cond_drop_prob", self.cond_drop_prob, 0, 1)
        require_number("grad_clip", self.grad_clip, 0)
        require_number("ema_decay", self.ema_decay, 0, 1, high_open=True)
        require_number("time_limit_minutes", self.time_limit_minutes, 0)
        require_number("checkpoint_every_minutes", self.checkpoint_every_minutes, 0)
        require_number("min_snr_gamma", self.min_snr_gamma, 0, low_open=True)
        require_number("hybrid_vlb_weight", self.hybrid_vlb_weight, 0)
        require_number("log_normal_mean", self.log_normal_mean)
        require_number("log_normal_std", self.log_normal_std, 0, low_open=True)
        require_number("ema_sigma_rel", self.ema_sigma_rel, 0, 0.29, low_open=True)


def learning_rate(config: TrainConfig, step: int) -> float:
    """Linear warm-up to ``lr`` over ``warmup_steps``, then constant or cosine decay to lr·min_lr_ratio."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if config.lr_schedule == "constant":
        return config.lr
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    floor = config.lr * config.min_lr_ratio
    return floor + (config.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))
