"""The loop state a training checkpoint's ``checkpoint.json`` holds (step, clock, RNG states,
optimiser groups), written, and read and checked before anything is loaded, so that a damaged
file gives one clear error naming it and what to do instead of a traceback."""

from __future__ import annotations

import binascii
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from ddpm.checkpoints import META_FILE, decode_bytes, encode_bytes
from ddpm.configuration import diff, merge
from ddpm.errors import UserError


@dataclass
class ResumeState:
    step: int
    elapsed_seconds: float
    param_groups: list
    rng_train: torch.Tensor  # the loop's generator (data order, t, ε, flips, label drops)
    rng_torch: torch.Tensor  # the global generator (dropout)

    def to_json(self, batch_size: int) -> dict:
        """The ``state`` section of ``checkpoint.json``."""
        return {
            "step": self.step,
            "images_seen": self.step * batch_size,
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "param_groups": self.param_groups,
            "rng_train": encode_bytes(self.rng_train),
            "rng_torch": encode_bytes(self.rng_torch),
            "torch_version": torch.__version__,
        }


def _rng(state: dict, key: str) -> torch.Tensor:
    """A CPU generator state from base64 text; ValueError if missing or not a generator state."""
    if not isinstance(state.get(key), str):
        raise ValueError(f"state.{key} is missing")
    try:
        value = decode_bytes(state[key])
        torch.Generator().set_state(value)  # checks size and contents on a scratch generator
    except (binascii.Error, ValueError, RuntimeError):
        raise ValueError(f"state.{key} is not a random-generator state") from None
    return value


def read_resume_state(path: Path, meta: dict, earlier: list[Path]) -> ResumeState:
    """The state in checkpoint ``path``'s ``meta``; UserError naming the damaged file otherwise.

    ``earlier`` lists the run's older complete checkpoints, to say which one to resume from."""
    state = meta.get("state")
    try:
        if not isinstance(state, dict):
            raise ValueError("it has no state section")
        step = state.get("step")
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"state.step is {step!r}, not a step number")
        elapsed = state.get("elapsed_seconds", 0.0)
        if isinstance(elapsed, bool) or not isinstance(elapsed, int | float) or not math.isfinite(elapsed):
            raise ValueError(f"state.elapsed_seconds is {elapsed!r}, not a number of seconds")
        groups = state.get("param_groups")
        if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
            raise ValueError("state.param_groups (the optimiser settings) is missing or damaged")
        return ResumeState(
            step=step,
            elapsed_seconds=float(elapsed),
            param_groups=groups,
            rng_train=_rng(state, "rng_train"),
            rng_torch=_rng(state, "rng_torch"),
        )
    except ValueError as err:
        if earlier:
            todo = (
                f"move {path.name} out of {path.parent} to resume from the earlier checkpoint "
                f"{earlier[-1].name}, or start a new run with another --out"
            )
        else:
            todo = "no earlier checkpoint exists; start a new run with another --out"
        raise UserError(f"{path / META_FILE} is damaged ({err}); {todo}") from None


RESUMABLE_SECTIONS = ("train", "sample")  # what a resumed run may change


def check_resumable(
    path: Path,
    meta: dict,
    full_config: dict,
    config_defaults: dict,
    state: ResumeState,
    steps: int,
    out: Path,
) -> ResumeState:
    """The checks every loop makes before resuming from checkpoint ``path``: its configuration
    (outside [train] and [sample]) is this run's, and ``steps`` leaves something to train."""
    saved = merge(config_defaults, meta.get("config", {}))
    mine = {k: v for k, v in full_config.items() if k not in RESUMABLE_SECTIONS}
    theirs = {k: v for k, v in saved.items() if k not in RESUMABLE_SECTIONS}
    changed = diff(mine, theirs)
    if changed:
        raise UserError(
            f"cannot resume {path}: its configuration differs in {', '.join(changed)}; "
            "use the run's own config (omit --config) or start a new run"
        )
    if state.step >= steps:
        raise UserError(
            f"the run in {out} is already at step {state.step}, so train.steps {steps} "
            f"leaves nothing to train; give --train.steps above {state.step} to continue it"
        )
    return state
