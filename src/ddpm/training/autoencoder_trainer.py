"""Training the KL autoencoder: the same run folder, checkpoints, lock, resume, stop requests, time
limit and previews as every other model (:class:`~ddpm.training.step_loop.StepLoop`), with the
loss of :mod:`ddpm.training.autoencoder_objective` and, when switched on, a patch discriminator.

Every checkpoint also stores the latent scale factor (1 / std of the latents of the first
training images), which latent diffusion multiplies its latents by."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ddpm.errors import UserError
from ddpm.imaging import make_image_grid, save_image, to_model_range
from ddpm.models.autoencoder import Autoencoder, AutoencoderConfig
from ddpm.models.patch_discriminator import PatchDiscriminator
from ddpm.runtime import resolve_device
from ddpm.training.autoencoder_objective import (
    AutoencoderLossConfig,
    adaptive_adversarial_weight,
    discriminator_hinge_loss,
    generator_adversarial_loss,
    kl_loss,
    latent_scale_factor,
    psnr,
    reconstruction_loss,
)
from ddpm.training.batches import batch_indices
from ddpm.training.config import TrainConfig
from ddpm.training.run import TrainResult
from ddpm.training.step_loop import StepLoop, check_finite, run_loop

SCALE_IMAGES = 1024  # training images whose latents set the scale factor
SCALE_SEED = 12345


@dataclass(kw_only=True)
class AutoencoderRun:
    """Everything an autoencoder run needs besides the images (cf. :class:`TrainingRun`)."""

    autoencoder: AutoencoderConfig
    loss: AutoencoderLossConfig
    train: TrainConfig
    full_config: dict
    config_defaults: dict = field(default_factory=dict)


@torch.no_grad()
def measure_scale_factor(model: Autoencoder, images: torch.Tensor, batch_size: int = 64) -> float:
    """:func:`latent_scale_factor` of posterior samples z ~ q(z | x) of the first
    :data:`SCALE_IMAGES` uint8 ``images``, drawn with a fixed seed (so it is reproducible)."""
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(SCALE_SEED)
    latents = []
    for start in range(0, min(len(images), SCALE_IMAGES), batch_size):
        x = to_model_range(images[start : start + batch_size]).to(device)
        latents.append(model.encode(x).sample(generator).float().cpu())
    return latent_scale_factor(torch.cat(latents))


def train_autoencoder(
    run: AutoencoderRun,
    images: torch.Tensor,
    out_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Train a KL autoencoder on uint8 ``images`` (N, C, H, W), writing the run to ``out_dir``.

    ``out_dir`` receives ``checkpoints/`` (each with ``model`` weights and the latent scale factor),
    ``samples/`` (input row above reconstruction row), ``log.jsonl`` and ``config.json``.
    Resume, Ctrl-C / SIGTERM and the run lock behave as in :func:`ddpm.training.train`.
    """
    a = run.autoencoder
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise UserError("training images must be uint8 (N, C, H, W)")
    _, c, h, w = images.shape
    if (c, h, w) != (a.in_channels, a.image_size, a.image_size):
        raise UserError(
            f"data are {c}×{h}×{w} but the autoencoder expects "
            f"{a.in_channels}×{a.image_size}×{a.image_size}; "
            "set autoencoder.in_channels / autoencoder.image_size or data.image_size to match"
        )
    out = Path(out_dir)
    return run_loop(
        lambda: _AutoencoderLoop(run, images, out, progress), out, resume, "autoencoder", run.train
    )


class _AutoencoderLoop(StepLoop):
    model_type = "autoencoder"
    description = "train autoencoder"

    def __init__(self, run: AutoencoderRun, images, out: Path, progress: bool):
        super().__init__(run.train, run.full_config, run.config_defaults, out, progress)
        self.spec, self.images = run, images
        self.device = resolve_device(self.tc.device)
        self.model = Autoencoder(run.autoencoder).to(self.device).train()
        self.opt = torch.optim.AdamW(
            self.model.parameters(), lr=self.tc.lr, betas=(0.5, 0.9), weight_decay=self.tc.weight_decay
        )
        self.disc = self.disc_opt = None
        if run.loss.disc_weight > 0:
            self.disc = PatchDiscriminator(
                run.autoencoder.in_channels, run.loss.disc_channels, run.loss.disc_layers
            ).to(self.device)
            self.disc_opt = torch.optim.AdamW(
                self.disc.parameters(), lr=run.loss.disc_lr or self.tc.lr, betas=(0.5, 0.9)
            )
        self.preview_images = to_model_range(images[: self.tc.sample_num])

    def groups(self) -> dict:
        return {"model": (self.model, self.opt), "discriminator": (self.disc, self.disc_opt)}

    def param_groups_key(self, name: str) -> str:
        return "disc_param_groups"  # the discriminator is the only other group

    def checkpoint_meta(self) -> dict:
        self.model.eval()
        scale = measure_scale_factor(self.model, self.images)
        self.model.train()
        return {"latent_scale_factor": scale}

    def postfix(self, record: dict, seconds: float) -> dict:
        return {"psnr": f"{record['psnr']:.1f}", "img_s": f"{self.tc.batch_size / seconds:.0f}"}

    def train_step(self) -> dict:
        loss_cfg = self.spec.loss
        lr = self.set_learning_rates()
        if self.disc_opt is not None and loss_cfg.disc_lr:
            for group in self.disc_opt.param_groups:
                group["lr"] = loss_cfg.disc_lr
        idx = batch_indices(len(self.images), self.tc.batch_size, self.step, self.tc.seed)
        x = to_model_range(self.images[idx])
        if self.tc.hflip:
            flip = torch.rand(len(x), generator=self.gen) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        x = x.to(self.device)
        x_hat, posterior = self.model(x, self.gen)
        rec = reconstruction_loss(x_hat, x, loss_cfg.reconstruction)
        kl = kl_loss(posterior)
        loss = rec + loss_cfg.kl_weight * kl
        record = {
            "reconstruction": float(rec.detach()) / x[0].numel(),
            "kl": float(kl.detach()),
            "psnr": psnr(x_hat.detach(), x),
        }
        adversarial_on = self.disc is not None and self.step >= loss_cfg.disc_start
        if adversarial_on:
            g_adv = generator_adversarial_loss(self.disc(x_hat))
            weight = adaptive_adversarial_weight(rec, g_adv, self.model.last_layer_weight)
            loss = loss + loss_cfg.disc_weight * weight * g_adv
            record.update(g_adv=float(g_adv.detach()), adv_weight=float(weight))
        value = float(loss.detach())
        check_finite(value, self.step, self.last_saved)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = 0.0
        if self.tc.grad_clip > 0:
            norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.tc.grad_clip))
        self.opt.step()
        if adversarial_on:
            self.disc_opt.zero_grad(set_to_none=True)
            d_loss = discriminator_hinge_loss(self.disc(x), self.disc(x_hat.detach()))
            d_loss.backward()
            self.disc_opt.step()
            record["d_loss"] = float(d_loss.detach())
        return {"loss": value, "grad_norm": norm, "lr": lr, **record}

    @torch.no_grad()
    def sample_grid(self) -> None:
        """Inputs (top row) above their reconstructions from the posterior mean (bottom row)."""
        self.model.eval()
        x = self.preview_images.to(self.device)
        x_hat = self.model.decode(self.model.encode(x).mode()).clamp(-1, 1).cpu()
        self.model.train()
        n = len(x)
        nrow = min(8, n)
        rows = []
        for start in range(0, n, nrow):
            rows += [x[start : start + nrow].cpu(), x_hat[start : start + nrow]]
        grid = make_image_grid(torch.cat(rows), nrow=nrow)
        scale = max(1, 128 // self.spec.autoencoder.image_size)
        save_image(grid, self.out / "samples" / f"step-{self.step:07d}.png", scale=scale)
