"""Checkpoints on disk: a folder of ``safetensors`` files plus ``checkpoint.json``, never pickle.

A training run keeps ``OUT/checkpoints/step-NNNNNNN/`` folders and a ``latest`` pointer file.
Each folder is written under a temporary name, flushed to disk, then renamed into place, and
the pointer is replaced atomically, so a killed run leaves either the old or the new checkpoint,
never half of one.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ddpm.checkpoints.diffusers_folder import diffusers_meta, diffusers_weights, is_diffusers_folder
from ddpm.checkpoints.run_folder import META_FILE, refuse_writing_over_a_run
from ddpm.errors import UserError
from ddpm.fileio import TEMP_PREFIX, write_folder_atomic, write_text_atomic

FORMAT = "ddpm-checkpoint"
VERSION = 1


def write_checkpoint(directory: str | Path, tensors: dict[str, dict[str, torch.Tensor]], meta: dict) -> Path:
    """Write ``{name}.safetensors`` for each tensor group and ``checkpoint.json``, atomically.

    If ``directory`` already exists it is replaced only after the new one is complete. It is never
    a training run's checkpoint nor inside one's checkpoints (UserError): only the run writes there.
    """
    refuse_writing_over_a_run(directory)
    return _write_folder(Path(directory), tensors, meta)


def _write_folder(directory: Path, tensors: dict[str, dict[str, torch.Tensor]], meta: dict) -> Path:
    def fill(tmp: Path) -> None:
        for name, group in tensors.items():
            flat = {k: v.detach().cpu().contiguous() for k, v in group.items()}
            save_file(flat, tmp / f"{name}.safetensors")
        body = {"format": FORMAT, "version": VERSION, **meta}
        (tmp / META_FILE).write_text(json.dumps(body, indent=2) + "\n")

    return write_folder_atomic(directory, fill)


def read_meta(directory: str | Path) -> dict:
    """The ``checkpoint.json`` of a checkpoint folder, validated (a diffusers folder's, made up)."""
    path = Path(directory) / META_FILE
    if not path.is_file() and is_diffusers_folder(directory):
        return {"format": FORMAT, "version": VERSION, **diffusers_meta(directory)}
    if not path.is_file():
        raise UserError(f"{directory} is not a checkpoint: {META_FILE} is missing")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"checkpoint file {path} is corrupt ({err}); use another checkpoint") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UserError(f"{path} is not a {FORMAT} file")
    if meta.get("version", 0) > VERSION:
        raise UserError(f"{path} has format version {meta['version']}; upgrade ddpm to read it")
    return meta


def has_tensors(directory: str | Path, name: str) -> bool:
    """Whether :func:`read_tensors` finds group ``name`` (a diffusers folder has "ema" and "model":
    the one set of U-Net weights it holds)."""
    if (Path(directory) / f"{name}.safetensors").is_file():
        return True
    return name in ("ema", "model") and is_diffusers_folder(directory)


def read_tensors(directory: str | Path, name: str) -> dict[str, torch.Tensor]:
    """Load ``{name}.safetensors`` from a checkpoint folder (a diffusers folder: its U-Net's weights,
    renamed as ours); corrupt files raise UserError."""
    path = Path(directory) / f"{name}.safetensors"
    if not path.is_file() and name in ("ema", "model") and is_diffusers_folder(directory):
        return diffusers_weights(directory)
    if not path.is_file():
        raise UserError(f"checkpoint {directory} has no {path.name}")
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as err:
        raise UserError(f"checkpoint file {path} is corrupt ({err}); use another checkpoint") from None


def encode_bytes(t: torch.Tensor) -> str:
    """A uint8 tensor (an RNG state) as base64 text for JSON."""
    return base64.b64encode(t.numpy().tobytes()).decode()


def decode_bytes(s: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(s)), dtype=torch.uint8)


def optimizer_to_tensors(state: dict) -> tuple[dict[str, torch.Tensor], list]:
    """Split an optimiser ``state_dict`` into flat tensors (``{param}.{key}``) and JSON param groups."""
    tensors = {}
    for idx, slots in state["state"].items():
        for key, value in slots.items():
            tensors[f"{idx}.{key}"] = torch.as_tensor(value)
    return tensors, state["param_groups"]


def optimizer_from_tensors(tensors: dict[str, torch.Tensor], param_groups: list) -> dict:
    """Inverse of :func:`optimizer_to_tensors`."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": param_groups}


class CheckpointDir:
    """The ``checkpoints/`` folder of a training run: numbered checkpoints and a ``latest`` pointer."""

    def __init__(self, run_dir: str | Path):
        self.root = Path(run_dir) / "checkpoints"

    def path(self, step: int) -> Path:
        return self.root / f"step-{step:07d}"

    def complete(self) -> list[Path]:
        """Finished checkpoints, oldest first."""
        if not self.root.is_dir():
            return []
        found = [p for p in self.root.glob("step-*") if (p / META_FILE).is_file()]
        return sorted(found, key=lambda p: p.name)

    def latest(self) -> Path | None:
        """The checkpoint the pointer names, or the newest complete one if the pointer is stale."""
        pointer = self.root / "latest"
        if pointer.is_file():
            candidate = self.root / pointer.read_text().strip()
            if (candidate / META_FILE).is_file():
                return candidate
        done = self.complete()
        return done[-1] if done else None

    def temporaries(self) -> list[Path]:
        """What a killed checkpoint write left behind: ``.step-*`` folders, ``.latest.*`` files."""
        if not self.root.is_dir():
            return []
        prefixes = (f"{TEMP_PREFIX}step-", f"{TEMP_PREFIX}latest.")
        return sorted(p for p in self.root.iterdir() if p.name.startswith(prefixes))

    def remove_temporaries(self) -> None:
        """Delete :meth:`temporaries`; call it only while holding the run's lock."""
        for p in self.temporaries():
            shutil.rmtree(p) if p.is_dir() else p.unlink()

    def save(self, step: int, tensors: dict, meta: dict, keep: int) -> Path:
        path = _write_folder(self.path(step), tensors, meta)
        write_text_atomic(self.root / "latest", path.name + "\n")
        for old in self.complete()[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
        return path
