"""The single-process training loop shared by the models trained beside diffusion (the KL
autoencoder, the GAN, VAE and flow baselines): run folder, lock, checkpoints of named
(network, optimiser) groups, exact resume, Ctrl-C / SIGTERM, time limit, log and preview grids.

A family subclasses :class:`StepLoop` and gives its networks and optimisers (:meth:`groups`), one
optimisation step (:meth:`train_step`), a preview grid (:meth:`sample_grid`) and what its
checkpoints record besides the weights (:meth:`checkpoint_meta`).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
from torch import nn

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
from ddpm.runtime import progress_bar, set_threads
from ddpm.training.config import TrainConfig, learning_rate
from ddpm.training.distributed import topology_from_env
from ddpm.training.interrupts import StopRequest
from ddpm.training.resume_state import ResumeState, check_resumable, read_resume_state
from ddpm.training.run import TrainResult
from ddpm.training.run_log import RunLog


def check_finite(value: float, step: int, last_saved: int, what: str = "loss") -> None:
    """A UserError saying the run diverged (and which checkpoint is kept) if ``value`` is not finite."""
    if math.isfinite(value):
        return
    kept = f"the last checkpoint, step {last_saved}, is kept" if last_saved >= 0 else "nothing saved"
    raise UserError(
        f"{what} became {value} at step {step}: training diverged ({kept}); "
        "lower --train.lr or raise --train.warmup_steps"
    )


def open_run(out: Path, resume: bool, what: str) -> tuple[CheckpointDir, Path | None]:
    """The run's checkpoints and the one to resume from, after the checks every loop makes."""
    if topology_from_env().distributed:
        raise UserError(f"{what} training runs in one process; start it without torchrun")
    checkpoints = CheckpointDir(out)
    latest = checkpoints.latest()
    if latest is not None and not resume:
        raise UserError(
            f"{out} already holds a training run; pass --resume to continue it or choose another --out"
        )
    if resume and latest is None:
        raise UserError(f"nothing to resume: {out} has no checkpoint; drop --resume to start a new run")
    return checkpoints, latest if resume else None


class StepLoop:
    """One process, optimiser steps on random batches; see the module docstring."""

    model_type = ""  # recorded in every checkpoint
    description = "train"  # progress-bar label

    def __init__(
        self, train: TrainConfig, full_config: dict, config_defaults: dict, out: Path, progress: bool
    ):
        self.tc, self.full_config, self.config_defaults = train, full_config, config_defaults
        self.out, self.progress = out, progress
        self.gen = torch.Generator().manual_seed(train.seed)
        self.step, self.elapsed, self.last_saved = 0, 0.0, -1
        self.mid_step = False

    # -- what a family provides ------------------------------------------------------------------
    def groups(self) -> dict[str, tuple[nn.Module | None, torch.optim.Optimizer | None]]:
        """Checkpointed (network, optimiser) pairs by name; "model" is the main one. Either may be
        None (a network not trained yet, or an optimiser of part of another group's network)."""
        raise NotImplementedError

    def train_step(self) -> dict[str, float]:
        """One optimiser step; returns at least ``loss`` (and ``lr``)."""
        raise NotImplementedError

    def sample_grid(self) -> None:
        """Write ``samples/step-NNNNNNN.png``."""
        raise NotImplementedError

    def checkpoint_meta(self) -> dict:
        """Entries of ``checkpoint.json`` besides kind, model_type, config and state."""
        return {}

    def param_groups_key(self, name: str) -> str:
        """Where ``checkpoint.json``'s state keeps the optimiser groups of group ``name`` (other
        than "model", whose groups are ``param_groups``)."""
        return f"{name}_param_groups"

    def postfix(self, record: dict, seconds: float) -> dict:
        """What the progress bar shows after a step."""
        return {"loss": f"{record['loss']:.4f}", "img_s": f"{self.tc.batch_size / seconds:.0f}"}

    # -- shared machinery ------------------------------------------------------------------------
    def set_learning_rates(self, lr: float | None = None) -> float:
        """Set every optimiser to the scheduled learning rate of this step (or ``lr``); return it."""
        lr = learning_rate(self.tc, self.step) if lr is None else lr
        for _, opt in self.groups().values():
            for group in opt.param_groups if opt is not None else ():
                group["lr"] = lr
        return lr

    def start(self, checkpoints: CheckpointDir, resume_from: Path | None) -> None:
        """Load ``resume_from`` (if any), then open the log and write config.json."""
        self.checkpoints = checkpoints
        if resume_from is not None:
            self.load(resume_from)
        self.log = RunLog(self.out / "log.jsonl", self.tc.tensorboard)
        self.out.mkdir(parents=True, exist_ok=True)
        checkpoints.remove_temporaries()
        self.log.keep_until(self.step)
        write_text_atomic(self.out / "config.json", json.dumps(self.full_config, indent=2) + "\n")

    def load(self, path: Path) -> None:
        meta = read_meta(path)
        earlier = [p for p in self.checkpoints.complete() if p.name < path.name]
        state = read_resume_state(path, meta, earlier)
        check_resumable(path, meta, self.full_config, self.config_defaults, state, self.tc.steps, self.out)
        saved = meta.get("state", {})
        try:
            for name, (net, opt) in self.groups().items():
                if net is not None:
                    net.load_state_dict(read_tensors(path, name))
                if opt is not None:
                    groups = state.param_groups if name == "model" else saved.get(self.param_groups_key(name))
                    opt.load_state_dict(
                        optimizer_from_tensors(read_tensors(path, f"{name}_optimizer"), groups)
                    )
        except (RuntimeError, KeyError, ValueError, TypeError, UserError) as err:
            raise UserError(
                f"checkpoint {path} does not match the model: {str(err).splitlines()[0]}"
            ) from None
        self.gen.set_state(state.rng_train)
        torch.set_rng_state(state.rng_torch)
        self.step, self.elapsed = state.step, state.elapsed_seconds
        self.last_saved = self.step

    def save(self) -> Path:
        tensors, groups = {}, {}
        for name, (net, opt) in self.groups().items():
            if net is not None:
                tensors[name] = net.state_dict()
            if opt is not None:
                tensors[f"{name}_optimizer"], groups[name] = optimizer_to_tensors(opt.state_dict())
        state = ResumeState(
            step=self.step,
            elapsed_seconds=self.elapsed,
            param_groups=groups.get("model", []),
            rng_train=self.gen.get_state(),
            rng_torch=torch.get_rng_state(),
        ).to_json(self.tc.batch_size)
        for name, value in groups.items():
            if name != "model":
                state[self.param_groups_key(name)] = value
        meta = {
            "kind": "training",
            "model_type": self.model_type,
            "config": self.full_config,
            **self.checkpoint_meta(),
            "state": state,
        }
        path = self.checkpoints.save(self.step, tensors, meta, self.tc.keep_checkpoints)
        self.last_saved = self.step
        return path

    def fit(self, stop: StopRequest) -> TrainResult:
        tc = self.tc
        bar = progress_bar(total=tc.steps, initial=self.step, desc=self.description, enabled=self.progress)
        window: dict[str, float] = {}
        window_n, window_t, record = 0, time.perf_counter(), {"loss": float("nan")}
        deadline = time.monotonic() + tc.time_limit_minutes * 60 if tc.time_limit_minutes > 0 else None
        interrupted = False
        try:
            while self.step < tc.steps:
                t0 = time.perf_counter()
                self.mid_step = True
                record = self.train_step()
                self.step += 1
                self.mid_step = False
                dt = time.perf_counter() - t0
                self.elapsed += dt
                for k, v in record.items():
                    window[k] = window.get(k, 0.0) + v
                window_n += 1
                bar.update(1)
                bar.set_postfix(self.postfix(record, dt))
                if self.step % tc.log_every == 0 or self.step == tc.steps:
                    now = time.perf_counter()
                    entry = {"step": self.step, **{k: v / window_n for k, v in window.items()}}
                    entry["lr"] = record.get("lr", entry.get("lr"))
                    entry["images_per_second"] = window_n * tc.batch_size / (now - window_t)
                    entry["elapsed_seconds"] = round(self.elapsed, 2)
                    self.log.write_if(True, entry)
                    window, window_n, window_t = {}, 0, now
                if stop.requested:
                    interrupted = True
                    break
                if tc.sample_every and self.step % tc.sample_every == 0:
                    self.sample_grid()
                if self.step % tc.checkpoint_every == 0:
                    self.save()
                if deadline is not None and time.monotonic() > deadline:
                    bar.write(f"time limit of {tc.time_limit_minutes} min reached at step {self.step}")
                    break
        except KeyboardInterrupt:
            bar.close()
            if not stop.hard and not self.mid_step and self.step > self.last_saved:
                path = self.save()
                print(f"\ninterrupted at step {self.step}; saved {path}; continue with --resume")
            raise
        bar.close()
        path = self.save() if self.step > self.last_saved else self.checkpoints.latest()
        if interrupted and self.step < tc.steps:
            print(f"\ninterrupted at step {self.step}; saved {path}; continue with --resume")
            raise KeyboardInterrupt
        if tc.sample_every and self.step % tc.sample_every != 0:
            self.sample_grid()
        return TrainResult(checkpoint=path, step=self.step, loss=record["loss"], elapsed_seconds=self.elapsed)


def run_loop(loop_factory, out: Path, resume: bool, what: str, train: TrainConfig) -> TrainResult:
    """Open the run in ``out`` under its lock and stop handler, build the loop (within the seeded
    global RNG, so initial weights follow ``train.seed``) and fit it."""
    with RunLock(out), StopRequest() as stop:
        checkpoints, resume_from = open_run(out, resume, what)
        set_threads(train.num_threads)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(train.seed)
            loop = loop_factory()
            loop.start(checkpoints, resume_from)
            try:
                return loop.fit(stop)
            finally:
                loop.log.close()
