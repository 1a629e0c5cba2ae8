"""Training the KL autoencoder: the same run folder, checkpoints, lock, resume, stop requests, time
limit and previews as diffusion training (:mod:`ddpm.training.trainer`), with the loss of
:mod:`ddpm.training.autoencoder_objective` and, when switched on, a patch discriminator.

Every checkpoint also stores the latent scale factor (1 / std of the latents of the first
training images), which latent diffusion multiplies its latents by."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ddpm.checkpoints import (
    CheckpointDir,
    RunLock,
    optimizer_from_tensors,
    optimizer_to_tensors,
    read_meta,
    read_tensors,
)
from ddpm.errors import UserError
from ddpm.fileio import write_text_atomic
from ddpm.imaging import make_image_grid, save_image, to_model_range
from ddpm.models.autoencoder import Autoencoder, AutoencoderConfig
from ddpm.models.patch_discriminator import PatchDiscriminator
from ddpm.runtime import progress_bar, resolve_device, set_threads
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
from ddpm.training.config import TrainConfig, learning_rate
from ddpm.training.distributed import topology_from_env
from ddpm.training.interrupts import StopRequest
from ddpm.training.resume_state import ResumeState, check_resumable, read_resume_state
from ddpm.training.run import TrainResult
from ddpm.training.run_log import RunLog

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
    if topology_from_env().distributed:
        raise UserError("autoencoder training runs in one process; start it without torchrun")
    out = Path(out_dir)
    with RunLock(out), StopRequest() as stop:
        checkpoints = CheckpointDir(out)
        latest = checkpoints.latest()
        if latest is not None and not resume:
            raise UserError(
                f"{out} already holds a training run; pass --resume to continue it or choose another --out"
            )
        if resume and latest is None:
            raise UserError(f"nothing to resume: {out} has no checkpoint; drop --resume to start a new run")
        set_threads(run.train.num_threads)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(run.train.seed)
            loop = _AutoencoderLoop(run, images, out, checkpoints, latest if resume else None, progress)
            return loop.fit(stop)


class _AutoencoderLoop:
    def __init__(
        self, run: AutoencoderRun, images, out: Path, checkpoints: CheckpointDir, resume_from, progress
    ):
        self.spec, self.tc, self.images, self.out = run, run.train, images, out
        self.checkpoints, self.progress = checkpoints, progress
        self.device = resolve_device(self.tc.device)
        self.model = Autoencoder(run.autoencoder).to(self.device)
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
        self.gen = torch.Generator().manual_seed(self.tc.seed)
        self.step, self.elapsed, self.last_saved = 0, 0.0, -1
        self.mid_step = False
        if resume_from is not None:
            self._load(resume_from)
        self.log = RunLog(out / "log.jsonl")
        out.mkdir(parents=True, exist_ok=True)
        checkpoints.remove_temporaries()
        self.log.keep_until(self.step)
        write_text_atomic(out / "config.json", json.dumps(run.full_config, indent=2) + "\n")
        self.preview_images = to_model_range(images[: self.tc.sample_num])

    # -- state ---------------------------------------------------------------------------------
    def _groups(self) -> dict:
        return {"model": (self.model, self.opt), "discriminator": (self.disc, self.disc_opt)}

    def _load(self, path: Path) -> None:
        meta = read_meta(path)
        earlier = [p for p in self.checkpoints.complete() if p.name < path.name]
        state = read_resume_state(path, meta, earlier)
        check_resumable(
            path, meta, self.spec.full_config, self.spec.config_defaults, state, self.tc.steps, self.out
        )
        groups = {
            "model": state.param_groups,
            "discriminator": meta.get("state", {}).get("disc_param_groups"),
        }
        try:
            for name, (net, opt) in self._groups().items():
                if net is None:
                    continue
                net.load_state_dict(read_tensors(path, name))
                opt.load_state_dict(
                    optimizer_from_tensors(read_tensors(path, f"{name}_optimizer"), groups[name])
                )
        except (RuntimeError, KeyError, ValueError, TypeError) as err:
            raise UserError(
                f"checkpoint {path} does not match the model: {str(err).splitlines()[0]}"
            ) from None
        self.gen.set_state(state.rng_train)
        torch.set_rng_state(state.rng_torch)
        self.step, self.elapsed = state.step, state.elapsed_seconds
        self.last_saved = self.step

    def _save(self) -> Path:
        tensors, groups = {}, {}
        for name, (net, opt) in self._groups().items():
            if net is None:
                continue
            opt_tensors, groups[name] = optimizer_to_tensors(opt.state_dict())
            tensors[name], tensors[f"{name}_optimizer"] = net.state_dict(), opt_tensors
        self.model.eval()
        scale = measure_scale_factor(self.model, self.images)
        self.model.train()
        state = ResumeState(
            step=self.step,
            elapsed_seconds=self.elapsed,
            param_groups=groups["model"],
            rng_train=self.gen.get_state(),
            rng_torch=torch.get_rng_state(),
        ).to_json(self.tc.batch_size)
        if "discriminator" in groups:
            state["disc_param_groups"] = groups["discriminator"]
        meta = {
            "kind": "training",
            "model_type": "autoencoder",
            "config": self.spec.full_config,
            "latent_scale_factor": scale,
            "state": state,
        }
        path = self.checkpoints.save(self.step, tensors, meta, self.tc.keep_checkpoints)
        self.last_saved = self.step
        return path

    # -- one step --------------------------------------------------------------------------------
    def _train_step(self) -> dict:
        self.mid_step = True
        loss_cfg, lr = self.spec.loss, learning_rate(self.tc, self.step)
        for opt in (self.opt, self.disc_opt):
            for group in opt.param_groups if opt is not None else ():
                group["lr"] = lr if opt is self.opt else (loss_cfg.disc_lr or lr)
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
        if not math.isfinite(value):
            where = (
                f"the last checkpoint, step {self.last_saved}, is kept"
                if self.last_saved >= 0
                else "nothing saved"
            )
            raise UserError(
                f"loss became {value} at step {self.step}: training diverged ({where}); "
                "lower --train.lr or raise --train.warmup_steps"
            )
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
        self.step += 1
        self.mid_step = False
        return {"loss": value, "grad_norm": norm, "lr": lr, **record}

    @torch.no_grad()
    def _sample_grid(self) -> None:
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

    # -- the loop --------------------------------------------------------------------------------
    def fit(self, stop: StopRequest) -> TrainResult:
        tc = self.tc
        bar = progress_bar(total=tc.steps, initial=self.step, desc="train autoencoder", enabled=self.progress)
        window: dict[str, float] = {}
        window_n, window_t, record = 0, time.perf_counter(), {"loss": float("nan")}
        deadline = time.monotonic() + tc.time_limit_minutes * 60 if tc.time_limit_minutes > 0 else None
        interrupted = False
        self.model.train()
        try:
            while self.step < tc.steps:
                t0 = time.perf_counter()
                record = self._train_step()
                dt = time.perf_counter() - t0
                self.elapsed += dt
                for k, v in record.items():
                    window[k] = window.get(k, 0.0) + v
                window_n += 1
                bar.update(1)
                bar.set_postfix(psnr=f"{record['psnr']:.1f}", img_s=f"{tc.batch_size / dt:.0f}")
                if self.step % tc.log_every == 0 or self.step == tc.steps:
                    now = time.perf_counter()
                    entry = {"step": self.step, **{k: v / window_n for k, v in window.items()}}
                    entry["lr"] = record["lr"]
                    entry["images_per_second"] = window_n * tc.batch_size / (now - window_t)
                    entry["elapsed_seconds"] = round(self.elapsed, 2)
                    self.log.write_if(True, entry)
                    window, window_n, window_t = {}, 0, now
                if stop.requested:
                    interrupted = True
                    break
                if tc.sample_every and self.step % tc.sample_every == 0:
                    self._sample_grid()
                if self.step % tc.checkpoint_every == 0:
                    self._save()
                if deadline is not None and time.monotonic() > deadline:
                    bar.write(f"time limit of {tc.time_limit_minutes} min reached at step {self.step}")
                    break
        except KeyboardInterrupt:
            bar.close()
            if not stop.hard and not self.mid_step and self.step > self.last_saved:
                path = self._save()
                print(f"\ninterrupted at step {self.step}; saved {path}; continue with --resume")
            raise
        bar.close()
        path = self._save() if self.step > self.last_saved else self.checkpoints.latest()
        if interrupted and self.step < tc.steps:
            print(f"\ninterrupted at step {self.step}; saved {path}; continue with --resume")
            raise KeyboardInterrupt
        if tc.sample_every and self.step % tc.sample_every != 0:
            self._sample_grid()
        return TrainResult(checkpoint=path, step=self.step, loss=record["loss"], elapsed_seconds=self.elapsed)
