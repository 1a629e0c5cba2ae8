"""An inference checkpoint whose EMA length is chosen after training, from a run's EMA snapshots
(EDM2's post-hoc EMA; :mod:`ddpm.training.post_hoc_ema`)."""

from __future__ import annotations

from pathlib import Path

from ddpm.checkpoints import write_checkpoint
from ddpm.errors import UserError
from ddpm.training.ema import gamma_to_sigma_rel
from ddpm.training.post_hoc_ema import SNAPSHOT_FOLDER, read_snapshots, reconstruct_ema

MAX_SIGMA_REL = gamma_to_sigma_rel(0.0)  # widths above the flat profile's need γ < 0


def post_hoc_ema_checkpoint(
    run: str | Path, sigma_rel: float, out: str | Path, step: int | None = None
) -> Path:
    """Write ``out``: the run's configuration with the power EMA of width ``sigma_rel`` at the last
    snapshot (up to ``step``), rebuilt from every snapshot up to it."""
    run, out = Path(run), Path(out)
    if not run.is_dir():
        raise UserError(f"no run folder at {run}")
    if not 0 < sigma_rel <= MAX_SIGMA_REL:
        raise UserError(f"--sigma-rel must be in (0, {MAX_SIGMA_REL:.3f}]; EDM2 finds 0.05–0.15 useful")
    if out.exists() and not (out / "checkpoint.json").is_file():
        raise UserError(f"{out} exists and is not a checkpoint; choose a new --out")
    if not read_snapshots(run, step):
        where = f" up to step {step}" if step is not None else ""
        raise UserError(
            f"{run}/{SNAPSHOT_FOLDER} holds no EMA snapshots{where}; train with "
            "--train.ema_snapshot_every N (for example 500) to choose the EMA length afterwards"
        )
    weights, meta, coefficients = reconstruct_ema(run, sigma_rel, step)
    info = {
        "kind": "inference",
        "config": meta["config"],
        "state": {"step": meta["step"]},
        "class_names": meta.get("class_names", []),
        "weights_dtype": "float32",
        "weights": "ema",
        "source": run.name,
        "ema": {"sigma_rel": sigma_rel, "snapshots": len(coefficients) // 2, "post_hoc": True},
    }
    for key in ("text_encoder", "autoencoder"):
        if key in meta:
            info[key] = meta[key]
    return write_checkpoint(out, {"ema": weights}, info)
