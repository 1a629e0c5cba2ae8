"""Training the baseline generative models (GAN, VAE, normalising flow) with the run folder,
checkpoints, resume, stop requests, time limit and previews of every other model
(:class:`~ddpm.training.step_loop.StepLoop`).

- GAN: one discriminator step on the hinge loss, then one generator step, Adam with β = (0.5, 0.999)
  (DCGAN); the sampling generator is an EMA of the trained one (``train.ema_decay``).
- VAE: the negative ELBO (β = 1) of uniformly dequantised images, AdamW.
- Flow: the negative log-likelihood in bits/dim of dequantised images, AdamW.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ddpm.errors import UserError
from ddpm.imaging import make_image_grid, save_image, to_model_range
from ddpm.models.baselines import BaselineConfig, build_baseline
from ddpm.runtime import resolve_device
from ddpm.training.baseline_objectives import (
    dequantize,
    flow_negative_log_likelihood,
    gan_discriminator_loss,
    gan_generator_loss,
    vae_negative_elbo,
)
from ddpm.training.batches import batch_indices
from ddpm.training.config import TrainConfig
from ddpm.training.ema import ema_decay_at
from ddpm.training.run import TrainResult
from ddpm.training.step_loop import StepLoop, check_finite, run_loop

GAN_BETAS = (0.5, 0.999)  # DCGAN's Adam momenta


@dataclass(kw_only=True)
class BaselineRun:
    """Everything a baseline run needs besides the images (cf. :class:`TrainingRun`)."""

    baseline: BaselineConfig
    train: TrainConfig
    full_config: dict
    config_defaults: dict = field(default_factory=dict)


def train_baseline(
    run: BaselineRun,
    images: torch.Tensor,
    out_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Train the GAN, VAE or flow of ``run.baseline`` on uint8 ``images`` (N, C, H, W), writing the
    run to ``out_dir`` (``checkpoints/``, ``samples/``, ``log.jsonl``, ``config.json``)."""
    b = run.baseline
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise UserError("training images must be uint8 (N, C, H, W)")
    _, c, h, w = images.shape
    if (c, h, w) != (b.in_channels, b.image_size, b.image_size):
        raise UserError(
            f"data are {c}×{h}×{w} but the {b.family} expects {b.in_channels}×{b.image_size}×{b.image_size}; "
            "set baseline.in_channels / baseline.image_size or data.image_size to match"
        )
    out = Path(out_dir)
    return run_loop(
        lambda: BaselineLoop(run, images, out, progress), out, resume, f"{b.family} baseline", run.train
    )


class BaselineLoop(StepLoop):
    model_type = "baseline"

    def __init__(self, run: BaselineRun, images: torch.Tensor, out: Path, progress: bool):
        super().__init__(run.train, run.full_config, run.config_defaults, out, progress)
        self.spec, self.images = run.baseline, images
        self.description = f"train {run.baseline.family}"
        self.device = resolve_device(self.tc.device)
        self.model = build_baseline(run.baseline).to(self.device).train()
        tc = self.tc
        if self.spec.family == "gan":
            self.opt = torch.optim.Adam(self.model.generator.parameters(), lr=tc.lr, betas=GAN_BETAS)
            self.disc_opt = torch.optim.Adam(self.model.discriminator.parameters(), lr=tc.lr, betas=GAN_BETAS)
        else:
            self.opt = torch.optim.AdamW(
                self.model.parameters(), lr=tc.lr, betas=(0.9, tc.adam_beta2), weight_decay=tc.weight_decay
            )
            self.disc_opt = None
        self.preview_seed = tc.seed + 1

    def groups(self):
        # the GAN's discriminator lives inside the model's state; its optimiser is a group of its own
        groups = {"model": (self.model, self.opt)}
        if self.disc_opt is not None:
            groups["discriminator"] = (None, self.disc_opt)
        return groups

    def checkpoint_meta(self) -> dict:
        return {"family": self.spec.family}

    def _batch(self) -> torch.Tensor:
        idx = batch_indices(len(self.images), self.tc.batch_size, self.step, self.tc.seed)
        x = self.images[idx]
        if self.tc.hflip:
            flip = torch.rand(len(x), generator=self.gen) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        return x.to(self.device)

    def _clip(self, params) -> float:
        if self.tc.grad_clip <= 0:
            return 0.0
        return float(torch.nn.utils.clip_grad_norm_(params, self.tc.grad_clip))

    def train_step(self) -> dict[str, float]:
        lr = self.set_learning_rates()
        x = self._batch()
        if self.spec.family == "gan":
            return {"lr": lr, **self._gan_step(to_model_range(x))}
        if self.spec.family == "vae":
            loss, record = vae_negative_elbo(self.model, dequantize(x, self.gen), self.gen)
        else:
            loss = flow_negative_log_likelihood(self.model, x, self.gen).mean()
            record = {"bits_per_dim": float(loss.detach())}
        check_finite(float(loss.detach()), self.step, self.last_saved)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = self._clip(self.model.parameters())
        self.opt.step()
        return {"loss": float(loss.detach()), "grad_norm": norm, "lr": lr, **record}

    def _gan_step(self, x: torch.Tensor) -> dict[str, float]:
        gan = self.model
        z = torch.randn((len(x), self.spec.latent_dim), generator=self.gen).to(self.device)
        fake = gan.generator(z)
        d_loss = gan_discriminator_loss(gan.discriminator(x), gan.discriminator(fake.detach()))
        check_finite(float(d_loss.detach()), self.step, self.last_saved, "the discriminator loss")
        self.disc_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        self._clip(gan.discriminator.parameters())
        self.disc_opt.step()
        g_loss = gan_generator_loss(gan.discriminator(fake))
        check_finite(float(g_loss.detach()), self.step, self.last_saved, "the generator loss")
        self.opt.zero_grad(set_to_none=True)
        g_loss.backward()
        norm = self._clip(gan.generator.parameters())
        self.opt.step()
        gan.update_ema(ema_decay_at(self.tc.ema_decay, self.step))
        return {"loss": float(g_loss.detach()), "d_loss": float(d_loss.detach()), "grad_norm": norm}

    def postfix(self, record: dict, seconds: float) -> dict:
        out = {"loss": f"{record['loss']:.3f}", "img_s": f"{self.tc.batch_size / seconds:.0f}"}
        if "d_loss" in record:
            out["d"] = f"{record['d_loss']:.3f}"
        return out

    @torch.no_grad()
    def sample_grid(self) -> None:
        """Samples from fixed noise (the EMA generator for the GAN)."""
        self.model.eval()
        x = (
            self.model.sample(self.tc.sample_num, torch.Generator().manual_seed(self.preview_seed))
            .float()
            .cpu()
        )
        self.model.train()
        scale = max(1, 128 // self.spec.image_size)
        save_image(make_image_grid(x), self.out / "samples" / f"step-{self.step:07d}.png", scale=scale)
