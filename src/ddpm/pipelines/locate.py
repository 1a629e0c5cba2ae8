"""Finding a trained model: a checkpoint folder, a training-run folder, or a pretrained name."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ddpm.checkpoints import CheckpointDir
from ddpm.checkpoints.diffusers_folder import is_diffusers_folder
from ddpm.errors import UserError


def pretrained_names() -> list[str]:
    """Short names of the checkpoints shipped with the package."""
    root = resources.files("ddpm") / "pretrained"
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "checkpoint.json").is_file())


def resolve_checkpoint(name_or_path: str | Path) -> Path:
    """A checkpoint folder from a checkpoint path, a training-run folder, a diffusers pipeline or
    UNet2DModel folder, or a pretrained name."""
    path = Path(name_or_path)
    if path.exists():
        if (path / "checkpoint.json").is_file() or is_diffusers_folder(path):
            return path
        latest = CheckpointDir(path).latest()
        if latest is not None:
            return latest
        raise UserError(f"{path} holds no checkpoint (no checkpoint.json, no checkpoints/ folder)")
    if str(name_or_path) in pretrained_names():
        return Path(str(resources.files("ddpm") / "pretrained" / str(name_or_path)))
    names = ", ".join(pretrained_names()) or "none installed"
    raise UserError(f"checkpoint {str(name_or_path)!r} not found: give a path or a pretrained name ({names})")
