"""Choosing the EMA length after training (EDM2, Karras et al. 2024, §3.2).

During training two power EMAs (σ_rel 0.05 and 0.10, :mod:`ddpm.training.ema`) are tracked and
their weights saved every few steps (:class:`EMASnapshots`). A power EMA after t updates is a known
weighting of the raw weights θ_1 … θ_t (:func:`~ddpm.training.ema.power_profile`), so any other
profile — a power EMA of another width, at any step — is approximated by the combination of the
snapshots whose profiles best match it in least squares; the same combination of the snapshots'
weights is the reconstructed EMA (:func:`post_hoc_coefficients`, :func:`combine_snapshots`).
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ddpm.checkpoints import read_meta, read_tensors, write_checkpoint
from ddpm.training.ema import EMA, power_profile, sigma_rel_to_gamma

SNAPSHOT_SIGMA_RELS = (0.05, 0.10)
SNAPSHOT_FOLDER = "ema-snapshots"


def snapshot_group(sigma_rel: float) -> str:
    """The tensor group (file) name of one tracked EMA inside a snapshot or checkpoint."""
    return f"ema-power-{sigma_rel:.3f}"


def post_hoc_coefficients(snapshots: list[tuple[int, float]], gamma: float, updates: int) -> np.ndarray:
    """(K,) x minimising ‖Σ_k x_k p_k − p‖² over θ_1 … θ_N, where p_k is the profile of snapshot k
    (``(updates_k, gamma_k)``) and p that of a power EMA of exponent ``gamma`` after ``updates``
    updates (EDM2 §3.2, on the exact discrete profiles)."""
    length = max([updates, *(u for u, _ in snapshots)])
    basis = np.zeros((len(snapshots), length))
    for k, (u, g) in enumerate(snapshots):
        basis[k, :u] = power_profile(u, g)
    target = np.zeros(length)
    target[:updates] = power_profile(updates, gamma)
    x, *_ = np.linalg.lstsq(basis.T, target, rcond=None)
    return x


def combine_snapshots(states, coefficients) -> dict[str, torch.Tensor]:
    """Σ_k x_k θ_k over an iterable of weight dictionaries θ_k, read one at a time (accumulated in
    float64, returned in the first one's dtypes; integer buffers are taken from the first)."""
    total: dict[str, torch.Tensor] = {}
    dtypes: dict[str, torch.dtype] = {}
    for x, state in zip(coefficients, states, strict=True):
        for name, value in state.items():
            if name not in total:
                dtypes[name] = value.dtype
                total[name] = (
                    torch.zeros_like(value, dtype=torch.float64) if value.is_floating_point() else value
                )
            if value.is_floating_point():
                total[name] += float(x) * value.double()
    return {name: v.to(dtypes[name]) for name, v in total.items()}


class EMASnapshots:
    """The two power EMAs tracked for post-hoc EMA, and their snapshots in ``OUT/ema-snapshots/``."""

    def __init__(self, model: nn.Module, every: int, out: Path):
        self.every, self.folder = every, Path(out) / SNAPSHOT_FOLDER
        self.emas = {s: EMA(model, 0.0, "power", s) for s in SNAPSHOT_SIGMA_RELS}

    def update(self, model: nn.Module, step: int) -> None:
        for ema in self.emas.values():
            ema.update(model, step)

    def state_tensors(self) -> dict[str, dict[str, torch.Tensor]]:
        """Tensor groups to store in a training checkpoint (for an exact resume)."""
        return {snapshot_group(s): ema.model.state_dict() for s, ema in self.emas.items()}

    def load(self, checkpoint: Path) -> None:
        for s, ema in self.emas.items():
            ema.model.load_state_dict(read_tensors(checkpoint, snapshot_group(s)))

    def write_if_due(self, step: int, meta: dict) -> None:
        """After ``step`` optimiser steps: write a snapshot when ``step`` is a multiple of ``every``."""
        if step % self.every:
            return
        gammas = {snapshot_group(s): sigma_rel_to_gamma(s) for s in self.emas}
        info = {**meta, "kind": "ema-snapshot", "step": step, "updates": step, "gammas": gammas}
        write_checkpoint(self.folder / f"step-{step:07d}", self.state_tensors(), info)


def read_snapshots(run: Path, up_to: int | None = None) -> list[tuple[Path, dict]]:
    """The snapshot folders of a run (up to step ``up_to``), oldest first, with their metadata."""
    folder = Path(run) / SNAPSHOT_FOLDER
    found = []
    for path in sorted(folder.glob("step-*")) if folder.is_dir() else []:
        if (path / "checkpoint.json").is_file():
            meta = read_meta(path)
            if up_to is None or meta["step"] <= up_to:
                found.append((path, meta))
    return found


def reconstruct_ema(run: Path, sigma_rel: float, up_to: int | None = None) -> tuple[dict, dict, np.ndarray]:
    """(weights, metadata of the last snapshot used, coefficients): the power EMA of width
    ``sigma_rel`` at the last snapshot step, from every snapshot up to it."""
    found = read_snapshots(run, up_to)
    if not found:
        return {}, {}, np.zeros(0)
    updates = found[-1][1]["updates"]
    parts = [
        (meta["updates"], gamma, path, group)
        for path, meta in found
        for group, gamma in meta["gammas"].items()
    ]
    x = post_hoc_coefficients([(u, g) for u, g, _, _ in parts], sigma_rel_to_gamma(sigma_rel), updates)
    states = (read_tensors(path, group) for _, _, path, group in parts)
    return combine_snapshots(states, x), copy.deepcopy(found[-1][1]), x
