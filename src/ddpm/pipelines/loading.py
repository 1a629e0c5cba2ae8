"""Finding and loading a trained model: by path (run, checkpoint) or by a pretrained name."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch

from ddpm.checkpoints import CheckpointDir, read_meta, read_tensors, write_checkpoint
from ddpm.configuration import from_dict, to_dict
from ddpm.errors import UserError
from ddpm.models import UNet
from ddpm.pipelines.experiment import ExperimentConfig
from ddpm.runtime import resolve_device
from ddpm.schedules import NoiseSchedule, make_schedule


def pretrained_names() -> list[str]:
    """Short names of the checkpoints shipped with the package."""
    root = resources.files("ddpm") / "pretrained"
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "checkpoint.json").is_file())


def resolve_checkpoint(name_or_path: str | Path) -> Path:
    """A checkpoint folder from a checkpoint path, a training-run folder, or a pretrained name."""
    path = Path(name_or_path)
    if path.exists():
        if (path / "checkpoint.json").is_file():
            return path
        latest = CheckpointDir(path).latest()
        if latest is not None:
            return latest
        raise UserError(f"{path} holds no checkpoint (no checkpoint.json, no checkpoints/ folder)")
    if str(name_or_path) in pretrained_names():
        return Path(str(resources.files("ddpm") / "pretrained" / str(name_or_path)))
    names = ", ".join(pretrained_names()) or "none installed"
    raise UserError(f"checkpoint {str(name_or_path)!r} not found: give a path or a pretrained name ({names})")


@dataclass(kw_only=True)
class LoadedModel:
    """A network ready for sampling, with the diffusion it was trained for."""

    model: UNet
    config: ExperimentConfig
    schedule: NoiseSchedule
    meta: dict
    path: Path

    @property
    def prediction_type(self) -> str:
        return self.config.diffusion.prediction_type

    @property
    def class_names(self) -> tuple[str, ...]:
        """Names of the class labels (index order), or () for a model without labels."""
        names = tuple(self.meta.get("class_names") or ())
        return names or tuple(str(i) for i in range(self.config.model.num_classes))

    def parse_classes(self, spec: str) -> torch.Tensor:
        """Labels from a comma-separated list of class names or indices, or ``all``."""
        if not self.config.model.num_classes:
            raise UserError("this model was not trained with class labels; drop --class")
        names = self.class_names
        if spec.strip() == "all":
            return torch.arange(len(names))
        labels = []
        for item in (s.strip() for s in spec.split(",") if s.strip()):
            if item.isdigit() and int(item) < len(names):
                labels.append(int(item))
            elif item in names:
                labels.append(names.index(item))
            else:
                raise UserError(f"unknown class {item!r}; this model knows: {', '.join(names)} (or indices)")
        if not labels:
            raise UserError("--class needs at least one class name or index")
        return torch.tensor(labels)


def load_model(
    name_or_path: str | Path, device: str = "auto", weights: str = "ema", channels_last: bool | None = None
) -> LoadedModel:
    """Load the EMA weights (or ``weights="model"``, the raw ones) of a checkpoint, in eval mode.

    ``channels_last`` stores the convolution weights in NHWC order, which makes inference faster on
    CPUs (``benchmarks/cpu_fast_path.py``); by default it is on for the CPU and off elsewhere.
    Values and results are the same either way."""
    path = resolve_checkpoint(name_or_path)
    meta = read_meta(path)
    if "config" not in meta:
        raise UserError(f"checkpoint {path} lacks its configuration; it cannot be loaded")
    config = from_dict(ExperimentConfig, meta["config"])
    available = [n for n in (weights, "ema", "model") if (path / f"{n}.safetensors").is_file()]
    if not available:
        raise UserError(f"checkpoint {path} has no weights file (ema.safetensors or model.safetensors)")
    state = read_tensors(path, available[0])
    model = UNet(config.model)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = next((line.strip() for line in str(err).splitlines()[1:] if line.strip()), str(err))
        raise UserError(f"weights in {path} do not match its configuration: {first}") from None
    target = resolve_device(device)
    model = model.to(target).eval().requires_grad_(False)
    if channels_last is None:
        channels_last = target.type == "cpu"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return LoadedModel(
        model=model, config=config, schedule=make_schedule(config.diffusion), meta=meta, path=path
    )


def export_checkpoint(
    source: str | Path, out: str | Path, dtype: str = "float32", weights: str = "ema"
) -> Path:
    """Write a small inference checkpoint (EMA weights, or the raw ones, + configuration).

    ``dtype`` float16 or bfloat16 halves the file; weights are cast back to float32 on load.
    """
    dtypes = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if dtype not in dtypes:
        raise UserError(f"unknown dtype {dtype!r}; choose float32, float16 or bfloat16")
    loaded = load_model(source, device="cpu", weights=weights)
    out = Path(out)
    if out.exists() and not (out / "checkpoint.json").is_file():
        raise UserError(f"{out} exists and is not a checkpoint; choose a new --out")
    state = {k: v.to(dtypes[dtype]) for k, v in loaded.model.state_dict().items()}
    meta = {
        "kind": "inference",
        "config": to_dict(loaded.config),
        "state": {
            k: loaded.meta.get("state", {}).get(k)
            for k in ("step", "images_seen", "elapsed_seconds", "torch_version")
        },
        "class_names": list(loaded.class_names) if loaded.config.model.num_classes else [],
        "weights_dtype": dtype,
        "weights": weights,
        "source": loaded.path.name,
    }
    return write_checkpoint(out, {"ema": state}, meta)
