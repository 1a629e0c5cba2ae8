"""What a training run folder is, so that nothing but the run itself writes into its checkpoints.

A run folder holds ``checkpoints/`` (``step-NNNNNNN/`` folders and a ``latest`` pointer),
``log.jsonl``, ``config.json`` and, while a process trains it, ``train.lock``.
"""

from __future__ import annotations

import json
from pathlib import Path

from ddpm.checkpoints.run_lock import LOCK_FILE
from ddpm.errors import UserError

META_FILE = "checkpoint.json"  # in every checkpoint folder, beside its .safetensors files


def is_run_folder(path: str | Path) -> bool:
    """Whether ``path`` is (or was) a training run's folder."""
    path = Path(path)
    ckpts = path / "checkpoints"
    return (
        (path / LOCK_FILE).exists()
        or (path / "log.jsonl").is_file()
        or (ckpts / "latest").is_file()
        or (ckpts.is_dir() and any(p.name.startswith(("step-", ".step-")) for p in ckpts.iterdir()))
    )


def is_training_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a checkpoint a run can resume from (it holds the optimiser state)."""
    path = Path(path)
    if (path / "optimizer.safetensors").exists():
        return True
    try:
        return json.loads((path / META_FILE).read_text()).get("kind") == "training"
    except (OSError, ValueError, AttributeError):
        return False


def refuse_writing_over_a_run(target: str | Path) -> None:
    """Raise UserError if writing a checkpoint to ``target`` would replace or enter a training run's
    checkpoints: ``target`` is a training checkpoint, a run folder, or a run's checkpoints/ or
    anything inside it."""
    target = Path(target).resolve()
    advice = "only the run writes its checkpoints, so that it can always resume; choose a folder outside them"
    if is_training_checkpoint(target):
        raise UserError(f"{target} is a training checkpoint; writing there would replace it: {advice}")
    if is_run_folder(target):
        raise UserError(
            f"{target} is a training run folder; a checkpoint written there would mix with the run: {advice}"
        )
    for parent in (target, *target.parents):
        if parent.name == "checkpoints" and is_run_folder(parent.parent):
            raise UserError(f"{target} is within {parent}, the checkpoints of a training run; {advice}")
