"""The training loop around Algorithm 1: AdamW, warm-up, clipping, EMA, checkpoints, resume."""

from __future__ import annotations

import contextlib
import json
import math
import time
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
from ddpm.imaging import make_image_grid, save_image
from ddpm.models import UNetConfig
from ddpm.models.preconditioning import diffusion_network
from ddpm.runtime import (
    autocast,
    compiled,
    progress_bar,
    resolve_compile,
    resolve_device,
    resolve_precision,
    set_threads,
)
from ddpm.schedules import make_schedule
from ddpm.training.batches import batch_indices
from ddpm.training.conditioning import Conditioning, TextContext
from ddpm.training.config import learning_rate
from ddpm.training.distributed import max_over_ranks, mean_over_ranks, topology_from_env
from ddpm.training.distributed import start as start_distributed
from ddpm.training.distributed import stop as stop_distributed
from ddpm.training.ema import EMA
from ddpm.training.examples import PixelExamples
from ddpm.training.interrupts import StopRequest
from ddpm.training.noise_levels import training_noise
from ddpm.training.objective import recipe_loss, regression_loss
from ddpm.training.post_hoc_ema import EMASnapshots
from ddpm.training.preview import preview, preview_sampler
from ddpm.training.recipe import check_recipe
from ddpm.training.resume_state import ResumeState, check_resumable, read_resume_state
from ddpm.training.run import TrainingRun, TrainResult
from ddpm.training.run_log import RunLog
from ddpm.training.streamed_examples import StreamedExamples

TIME_LIMIT, INTERRUPTED = 1, 2  # why the loop stops early


def _check_images(images: torch.Tensor, model: UNetConfig, latents=None) -> None:
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise UserError("training images must be uint8 (N, C, H, W)")
    if latents is not None:
        c, h, w = latents.shape
        if c != model.in_channels or h != model.image_size or w != model.image_size:
            raise UserError(
                f"the autoencoder's latents are {c}×{h}×{w} but the model expects {model.in_channels}×"
                f"{model.image_size}×{model.image_size}; "
                f"set model.in_channels = {c} and model.image_size = {h}"
            )
        if len(latents) != len(images):
            raise UserError(f"{len(latents)} latents for {len(images)} images")
        return
    n, c, h, w = images.shape
    if c != model.in_channels or h != model.image_size or w != model.width:
        raise UserError(
            f"data are {c}×{h}×{w} but the model expects {model.in_channels}×{model.image_size}×"
            f"{model.width}; set model.in_channels / model.image_size (model.image_width) "
            "or data.image_size to match"
        )


def train(
    run: TrainingRun,
    images: torch.Tensor | StreamedExamples,
    out_dir: str | Path,
    *,
    labels: torch.Tensor | None = None,
    image_condition=None,
    text: TextContext | None = None,
    latents=None,
    resume: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Train a U-Net on uint8 ``images`` with DDPM Algorithm 1, writing the run to ``out_dir``.
    ``images`` is an (N, C, H, W) tensor or a :class:`StreamedExamples` read from disk as it goes.

    With ``latents`` (:class:`~ddpm.training.examples.CachedLatents` or ``OnTheFlyLatents`` of the
    same images) the model diffuses the scaled latents of a frozen autoencoder instead of pixels
    (latent diffusion), and preview grids are decoded to images.

    With ``model.num_classes`` > 0 it learns p(x | label) from ``labels`` (N,), dropping each
    label with probability ``train.cond_drop_prob`` to learn p(x) as well (classifier-free guidance).
    With ``image_condition(x0, generator)`` each batch is also conditioned on an image made from it
    (concatenated to x_t; ``model.cond_channels`` must match). With ``text`` (caption token states,
    ``model.context_dim`` wide) the network cross-attends to each image's caption.

    ``out_dir`` receives ``checkpoints/``, ``samples/`` (periodic grids from the EMA weights),
    ``log.jsonl`` and ``config.json``. With ``resume`` the newest checkpoint is loaded and the
    run continues on the same trajectory it would have followed uninterrupted. Ctrl-C or SIGTERM
    finishes the current step, saves a checkpoint and raises KeyboardInterrupt; a second Ctrl-C
    aborts at once without saving. One process at a time writes a run folder: it holds the run's
    lock (rank 0 under torchrun) and any other gets a UserError naming it.
    """
    tc = run.train
    streamed = images if isinstance(images, StreamedExamples) else None
    if streamed is not None:
        if latents is not None:
            raise UserError("streamed data sets train pixel-space models; latent models load their data")
        # the images previews condition on (image-to-image tasks): the first few of the set
        images = torch.stack([streamed.images[i] for i in range(min(len(streamed), tc.sample_num))])
    _check_images(images, run.model, latents)
    if latents is not None and image_condition is not None:
        raise UserError("image-to-image tasks (data.task) are not available for latent models yet")
    conditioning = Conditioning(
        labels=labels if run.model.num_classes else None,
        num_classes=run.model.num_classes,
        drop_prob=tc.cond_drop_prob,
        image=image_condition,
        text=text,
    )
    if (text is None) != (run.model.context_dim == 0):
        raise UserError("model.context_dim must be set exactly when the data set has captions")
    if tc.objective == "autoencoder":
        raise UserError("train.objective autoencoder is trained by train_autoencoder, not train")
    if tc.objective == "regression" and image_condition is None:
        raise UserError("train.objective regression predicts x from a condition; set data.task")
    if (image_condition is None) != (run.model.cond_channels == 0):
        raise UserError(
            "model.cond_channels must be set exactly when the data set defines a conditioning task"
        )
    out = Path(out_dir)
    topology = topology_from_env()
    with RunLock(out) if topology.is_main else contextlib.nullcontext(), StopRequest() as stop:
        examples = latents if latents is not None else streamed or PixelExamples(images)
        return _train_locked(run, images, examples, out, conditioning, resume, progress, stop)


def _train_locked(run, images, examples, out, conditioning, resume, progress, stop) -> TrainResult:
    tc = run.train
    checkpoints = CheckpointDir(out)
    latest = checkpoints.latest()
    if latest is not None and not resume:
        raise UserError(
            f"{out} already holds a training run; pass --resume to continue it or choose another --out"
        )
    if resume and latest is None:
        raise UserError(f"nothing to resume: {out} has no checkpoint; drop --resume to start a new run")
    set_threads(tc.num_threads)
    topology = topology_from_env()
    device = resolve_device(tc.device)
    if topology.distributed and device.type == "cuda":
        device = torch.device("cuda", topology.local_rank)
    if tc.batch_size % (topology.world * tc.grad_accum_steps):
        raise UserError(
            f"train.batch_size {tc.batch_size} must divide into {topology.world} process(es) × "
            f"{tc.grad_accum_steps} accumulation step(s)"
        )
    devices = [device.index or 0] if device.type == "cuda" else []
    start_distributed(topology, device)
    try:
        with torch.random.fork_rng(devices=devices):
            # weight init (rank 0's is broadcast by DDP) and dropout use the forked global generator
            torch.manual_seed(tc.seed + topology.rank)
            resume_from = latest if resume else None
            loop = _Loop(run, images, examples, conditioning, out, checkpoints, device, resume_from, progress)
            try:
                return loop.fit(stop)
            finally:
                loop.log.close()
                if isinstance(examples, StreamedExamples):
                    examples.close()
    finally:
        stop_distributed()


class _Loop:
    def __init__(self, run, images, examples, conditioning, out, checkpoints, device, resume_from, progress):
        self.spec, self.tc, self.images, self.out = run, run.train, images, out
        self.examples = examples
        self.conditioning = conditioning
        self.checkpoints, self.device, self.progress = checkpoints, device, progress
        self.precision = resolve_precision(self.tc.precision, device)
        self.schedule = make_schedule(run.diffusion)
        check_recipe(self.tc, run.diffusion)
        model = diffusion_network(run.model, run.diffusion).to(device)
        if self.tc.channels_last:
            model = model.to(memory_format=torch.channels_last)
        model.gradient_checkpointing = self.tc.grad_checkpointing
        if run.initial_weights is not None and resume_from is None:
            try:
                model.load_state_dict(run.initial_weights)
            except RuntimeError as err:
                first = next((ln.strip() for ln in str(err).splitlines()[1:] if ln.strip()), str(err))
                raise UserError(f"train.init_from does not match the model: {first}") from None
        self.model = model
        self.topology = topology_from_env()
        self.ema = EMA(model, self.tc.ema_decay, self.tc.ema, self.tc.ema_sigma_rel)
        self.snapshots = None
        if self.tc.ema_snapshot_every:
            self.snapshots = EMASnapshots(model, self.tc.ema_snapshot_every, out)
        self.opt = torch.optim.AdamW(
            model.parameters(),
            lr=self.tc.lr,
            betas=(0.9, self.tc.adam_beta2),
            weight_decay=self.tc.weight_decay,
        )
        self.gen = torch.Generator().manual_seed(self.tc.seed)
        self.step, self.elapsed, self.last_saved = 0, 0.0, -1
        self.last_step_seconds = 0.0
        self.mid_step = False  # true while a step changes the state: no checkpoint then
        if resume_from is not None:
            self._load(resume_from)
        self.log = RunLog(out / "log.jsonl", self.tc.tensorboard)
        if self.topology.is_main:  # every check passed: only now touch the run folder
            out.mkdir(parents=True, exist_ok=True)
            checkpoints.remove_temporaries()  # left by a killed write; we hold the run's lock
            self.log.keep_until(self.step)  # the steps after it will be logged again
            write_text_atomic(out / "config.json", json.dumps(run.full_config, indent=2) + "\n")
        self.train_model = model
        if self.topology.distributed:
            ids = [device.index] if device.type == "cuda" else None
            self.train_model = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
        # the compiled wrapper (when on) runs the forward pass; saving goes through self.model
        self.forward_model = compiled(self.train_model, resolve_compile(self.tc.compile, device))
        shape = (self.tc.sample_num, run.model.in_channels, run.model.image_size, run.model.width)
        self.grid_noise = torch.randn(shape, generator=torch.Generator().manual_seed(self.tc.seed + 1))

    # -- state ---------------------------------------------------------------------------------
    def _load(self, path: Path) -> None:
        meta = read_meta(path)
        earlier = [p for p in self.checkpoints.complete() if p.name < path.name]
        state = read_resume_state(path, meta, earlier)
        check_resumable(
            path, meta, self.spec.full_config, self.spec.config_defaults, state, self.tc.steps, self.out
        )
        mine_ae = (self.spec.metadata.get("autoencoder") or {}).get("digest")
        theirs_ae = (meta.get("autoencoder") or {}).get("digest")
        if mine_ae != theirs_ae:
            raise UserError(
                f"cannot resume {path}: it was trained on the latents of another autoencoder "
                f"(digest {str(theirs_ae)[:12]}, this one {str(mine_ae)[:12]}); give the run's own "
                "--latent.autoencoder or start a new run"
            )
        try:
            self.model.load_state_dict(read_tensors(path, "model"))
            self.ema.model.load_state_dict(read_tensors(path, "ema"))
            if self.snapshots is not None:
                self.snapshots.load(path)
            self.opt.load_state_dict(
                optimizer_from_tensors(read_tensors(path, "optimizer"), state.param_groups)
            )
        except (RuntimeError, KeyError, ValueError) as err:
            raise UserError(
                f"checkpoint {path} does not match the model: {str(err).splitlines()[0]}"
            ) from None
        self.gen.set_state(state.rng_train)
        torch.set_rng_state(state.rng_torch)
        self.step, self.elapsed = state.step, state.elapsed_seconds
        self.last_saved = self.step

    def _model_meta(self) -> dict:
        return {
            "config": self.spec.full_config,
            "class_names": list(self.spec.class_names),
            **self.spec.metadata,
        }

    def _save(self) -> Path:
        if not self.topology.is_main:  # rank 0 writes; the weights are the same everywhere
            self.last_saved = self.step
            return self.checkpoints.path(self.step)
        opt_tensors, groups = optimizer_to_tensors(self.opt.state_dict())
        meta = {
            "kind": "training",
            **self._model_meta(),
            "state": ResumeState(
                step=self.step,
                elapsed_seconds=self.elapsed,
                param_groups=groups,
                rng_train=self.gen.get_state(),
                rng_torch=torch.get_rng_state(),
            ).to_json(self.tc.batch_size),
        }
        tensors = {
            "model": self.model.state_dict(),
            "ema": self.ema.model.state_dict(),
            "optimizer": opt_tensors,
            **(self.snapshots.state_tensors() if self.snapshots is not None else {}),
        }
        path = self.checkpoints.save(self.step, tensors, meta, self.tc.keep_checkpoints)
        self.last_saved = self.step
        return path

    # -- one step --------------------------------------------------------------------------------
    def _batch(self):
        """This rank's share of global batch ``step``: (x0, t, ε, conditioning inputs).

        Every draw is made for the whole global batch, then sliced, so N processes (and any
        accumulation) see exactly the images, noise and label drops that one process would.
        """
        idx = batch_indices(len(self.examples), self.tc.batch_size, self.step, self.tc.seed)
        x0 = self.examples.batch(idx, self.gen)
        if self.tc.hflip:
            flip = torch.rand(len(x0), generator=self.gen) < 0.5
            x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
        cond = self.conditioning.batch(idx, x0, self.gen, self.device)
        tc = self.tc
        levels = (tc.noise_levels, tc.log_normal_mean, tc.log_normal_std)
        t, eps = training_noise(x0, self.schedule, self.gen, *levels)
        share = self.topology.share(len(x0))
        x0 = x0[share].to(self.device)
        x0 = x0.contiguous(memory_format=torch.channels_last) if self.tc.channels_last else x0
        return (
            x0,
            t[share].to(self.device),
            eps[share].to(self.device),
            {k: v[share] for k, v in cond.items()},
        )

    def _train_step(self) -> tuple[float, float]:
        self.mid_step = True
        lr = learning_rate(self.tc, self.step)
        for group in self.opt.param_groups:
            group["lr"] = lr
        x0, t, eps, cond = self._batch()
        self.opt.zero_grad(set_to_none=True)
        n, parts = len(x0), self.tc.grad_accum_steps
        value = 0.0
        for j, part in enumerate(torch.arange(n).chunk(parts)):
            sync = contextlib.nullcontext()
            if self.topology.distributed and j < parts - 1:
                sync = self.train_model.no_sync()  # average gradients once, after the last micro-batch
            c = {k: v[part] for k, v in cond.items()}
            with sync, autocast(self.precision, self.device):
                model_fn = lambda xt, tt, c=c: self.forward_model(xt, tt, **c)  # noqa: E731
                if self.tc.objective == "regression":
                    loss = regression_loss(model_fn, x0[part])
                else:
                    loss = recipe_loss(
                        model_fn, x0[part], t[part], eps[part], self.schedule, self.spec.diffusion, self.tc
                    )
                (loss * len(part) / n).backward()
            value += float(loss.detach()) * len(part) / n
        value = mean_over_ranks(value, self.topology, self.device)
        if not math.isfinite(value):
            where = (
                f"the last checkpoint, step {self.last_saved}, is kept"
                if self.last_saved >= 0
                else "nothing saved"
            )
            raise UserError(
                f"loss became {value} at step {self.step}: training diverged ({where}); "
                "lower --train.lr, raise --train.warmup_steps or use --train.precision fp32"
            )
        norm = 0.0
        if self.tc.grad_clip > 0:
            norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.tc.grad_clip))
        self.opt.step()
        self.ema.update(self.model, self.step)
        if self.snapshots is not None:
            self.snapshots.update(self.model, self.step)
        self.step += 1
        self.mid_step = False
        return value, norm

    def _sample_grid(self) -> None:
        if not self.topology.is_main:
            return
        x, nrow = preview(
            self.ema.model,
            self.schedule,
            self.spec.diffusion.prediction_type,
            preview_sampler(self.spec.sample, self.tc.sample_steps, self.schedule.num_timesteps),
            self.conditioning,
            self.images,
            self.grid_noise.to(self.device),
            self.tc.seed + 2,
            self.precision,
            self.tc.channels_last,
            regression=self.tc.objective == "regression",
        )
        if self.examples.decode is not None:
            x = self.examples.decode(x)
        scale = max(1, 128 // x.shape[-1])
        path = self.out / "samples" / f"step-{self.step:07d}.png"
        save_image(make_image_grid(x, nrow=nrow), path, scale=scale)

    def _minute_mark_passed(self) -> bool:
        """True once per ``train.checkpoint_every_minutes`` of training time (elapsed steps only)."""
        every = self.tc.checkpoint_every_minutes * 60
        return every > 0 and self.elapsed // every > (self.elapsed - self.last_step_seconds) // every

    # -- the loop --------------------------------------------------------------------------------
    def _stop_reason(self, stop: StopRequest, deadline: float | None) -> int:
        """0 go on, 1 time limit, 2 stop requested (a signal): decided by all ranks together, so
        that none stops alone and leaves the others waiting in all-reduce."""
        mine = INTERRUPTED if stop.requested else 0
        if not mine and deadline is not None and time.monotonic() > deadline:
            mine = TIME_LIMIT
        return max_over_ranks(mine, self.topology, self.device)

    def fit(self, stop: StopRequest) -> TrainResult:
        """Train to ``train.steps``; a stop request (signal) ends the loop only between steps."""
        tc = self.tc
        bar = progress_bar(
            total=tc.steps, initial=self.step, desc="train", enabled=self.progress and self.topology.is_main
        )
        window_loss, window_n, window_t = 0.0, 0, time.perf_counter()
        smooth, loss, reason = None, float("nan"), 0
        deadline = time.monotonic() + tc.time_limit_minutes * 60 if tc.time_limit_minutes > 0 else None
        if isinstance(self.examples, StreamedExamples):
            share = self.topology.share(tc.batch_size)
            self.examples.start(self.step, tc.steps, tc.batch_size, tc.seed, share)
        try:
            while self.step < tc.steps:
                t0 = time.perf_counter()
                loss, norm = self._train_step()
                dt = time.perf_counter() - t0
                self.elapsed += dt
                self.last_step_seconds = dt
                smooth = loss if smooth is None else 0.98 * smooth + 0.02 * loss
                window_loss, window_n = window_loss + loss, window_n + 1
                bar.update(1)
                bar.set_postfix(loss=f"{smooth:.4f}", img_s=f"{tc.batch_size / dt:.0f}")
                if self.step % tc.log_every == 0 or self.step == tc.steps:
                    now = time.perf_counter()
                    self.log.write_if(
                        self.topology.is_main,
                        {
                            "step": self.step,
                            "loss": window_loss / window_n,
                            "lr": learning_rate(tc, self.step - 1),
                            "grad_norm": norm,
                            "images_per_second": window_n * tc.batch_size / (now - window_t),
                            "elapsed_seconds": round(self.elapsed, 2),
                        },
                    )
                    window_loss, window_n, window_t = 0.0, 0, now
                if self.snapshots is not None and self.topology.is_main:
                    self.snapshots.write_if_due(self.step, self._model_meta())
                reason = self._stop_reason(stop, deadline)
                if reason == INTERRUPTED:
                    break  # saved below, before the sample grid a stop should not wait for
                if tc.sample_every and self.step % tc.sample_every == 0:
                    self._sample_grid()
                if self.step % tc.checkpoint_every == 0 or self._minute_mark_passed():
                    self._save()
                if reason == TIME_LIMIT:
                    if self.topology.is_main:
                        bar.write(f"time limit of {tc.time_limit_minutes} min reached at step {self.step}")
                    break
        except KeyboardInterrupt:
            # a second Ctrl-C (stop.hard) may land inside a step: then nothing is saved
            bar.close()
            if not stop.hard and not self.mid_step and self.step > self.last_saved:
                path = self._save()
                print(f"\ninterrupted at step {self.step}; saved {path}; continue with --resume")
            raise
        bar.close()
        path = self._save() if self.step > self.last_saved else self.checkpoints.latest()
        if reason == INTERRUPTED and self.step < tc.steps:
            print(f"\ninterrupted at step {self.step}; saved {path}; continue with --resume")
            raise KeyboardInterrupt
        if tc.sample_every and self.step % tc.sample_every != 0 and not stop.requested:
            self._sample_grid()
        return TrainResult(
            checkpoint=path,
            step=self.step,
            loss=loss,
            elapsed_seconds=self.elapsed,
            main_process=self.topology.is_main,
        )
