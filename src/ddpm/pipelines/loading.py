"""Loading a trained diffusion model (by path or pretrained name) for sampling, and exporting one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ddpm.checkpoints import has_tensors, read_meta, read_tensors, write_checkpoint
from ddpm.checkpoints.diffusers_folder import write_diffusers_folder
from ddpm.configuration import from_dict, to_dict
from ddpm.errors import UserError
from ddpm.models import UNet
from ddpm.models.preconditioning import diffusion_network
from ddpm.pipelines.autoencoders import LoadedAutoencoder, autoencoder_of, is_autoencoder, load_autoencoder
from ddpm.pipelines.experiment import ExperimentConfig
from ddpm.pipelines.locate import pretrained_names, resolve_checkpoint
from ddpm.pipelines.stored_config import with_legacy_defaults
from ddpm.runtime import resolve_device
from ddpm.schedules import NoiseSchedule, make_schedule


@dataclass(kw_only=True)
class LoadedModel:
    """A network ready for sampling, with the diffusion it was trained for; a latent model also
    carries its frozen autoencoder, and its samples are decoded to images."""

    model: UNet
    config: ExperimentConfig
    schedule: NoiseSchedule
    meta: dict
    path: Path
    autoencoder: LoadedAutoencoder | None = None
    weights: str = "ema"  # which weights were loaded: "ema", or "model" (raw) where asked or alone

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the images it makes (decoded ones, for a latent model)."""
        if self.autoencoder is not None:
            a = self.autoencoder.config
            return (a.in_channels, a.image_size, a.image_size)
        m = self.config.model
        return (m.in_channels, m.image_size, m.width)

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
    name_or_path: str | Path,
    device: str = "auto",
    weights: str = "ema",
    channels_last: bool | None = None,
    autoencoder: str | Path | None = None,
) -> LoadedModel:
    """Load the EMA weights (or ``weights="model"``, the raw ones) of a checkpoint, in eval mode.

    ``channels_last`` stores the convolution weights in NHWC order, which makes inference faster on
    CPUs (``benchmarks/cpu_fast_path.py``); by default it is on for the CPU and off elsewhere.
    Values and results are the same either way. A latent model loads the autoencoder its
    checkpoint names (or ``autoencoder``), after checking it is the one it was trained with."""
    path = resolve_checkpoint(name_or_path)
    meta = read_meta(path)
    if is_autoencoder(meta):
        raise UserError(
            f"{name_or_path} is an autoencoder, not a diffusion model; sample from a latent model "
            "trained on it (ddpm train --config faces64-latent --latent.autoencoder ...)"
        )
    if meta.get("model_type") == "baseline":
        raise UserError(
            f"{name_or_path} is a {meta.get('family', 'baseline')} baseline, not a diffusion model; "
            "it draws images with 'ddpm sample' alone (no sampler, no evaluation of the bound)"
        )
    if meta.get("model_type") == "segmentation-head":
        raise UserError(
            f"{name_or_path} is a segmentation head, not a diffusion model; use it with "
            f"'ddpm segment {name_or_path} --input IMAGE --out parts.png'"
        )
    if "config" not in meta:
        raise UserError(f"checkpoint {path} lacks its configuration; it cannot be loaded")
    config = from_dict(ExperimentConfig, with_legacy_defaults(meta["config"]))
    available = [n for n in (weights, "ema", "model") if has_tensors(path, n)]
    if not available:
        raise UserError(f"checkpoint {path} has no weights file (ema.safetensors or model.safetensors)")
    state = read_tensors(path, available[0])
    model = diffusion_network(config.model, config.diffusion)
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
    coder = None
    if meta.get("autoencoder") or autoencoder:
        coder = autoencoder_of(meta, autoencoder, device)
    return LoadedModel(
        model=model,
        config=config,
        schedule=make_schedule(config.diffusion),
        meta=meta,
        path=path,
        autoencoder=coder,
        weights=meta.get("weights", available[0]) if meta.get("kind") == "inference" else available[0],
    )


DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def export_checkpoint(
    source: str | Path,
    out: str | Path,
    dtype: str = "float32",
    weights: str = "ema",
    autoencoder: str | Path | None = None,
) -> Path:
    """Write a small inference checkpoint (EMA weights, or the raw ones, + configuration).

    ``dtype`` float16 or bfloat16 halves the file; weights are cast back to float32 on load.
    An autoencoder is exported as its weights, configuration and scale factor (cast to another
    dtype it becomes a different autoencoder, which latent models trained on it refuse). For a
    latent model, ``autoencoder`` records another name or path for the same autoencoder (say a
    pretrained name); its weights must match the recorded digest.
    """
    if dtype not in DTYPES:
        raise UserError(f"unknown dtype {dtype!r}; choose float32, float16 or bfloat16")
    out = Path(out)
    if out.exists() and not (out / "checkpoint.json").is_file():
        raise UserError(f"{out} exists and is not a checkpoint; choose a new --out")
    if is_autoencoder(read_meta(resolve_checkpoint(source))):
        if autoencoder:
            raise UserError("--autoencoder applies to latent diffusion models, not to an autoencoder")
        return _export_autoencoder(source, out, dtype)
    loaded = load_model(source, device="cpu", weights=weights, autoencoder=autoencoder)
    state = {k: v.to(DTYPES[dtype]) for k, v in loaded.model.state_dict().items()}
    meta = {
        "kind": "inference",
        "config": to_dict(loaded.config),
        "state": {
            k: loaded.meta.get("state", {}).get(k)
            for k in ("step", "images_seen", "elapsed_seconds", "torch_version")
        },
        "class_names": list(loaded.class_names) if loaded.config.model.num_classes else [],
        "weights_dtype": dtype,
        "weights": loaded.weights,
        "source": loaded.path.name,
    }
    for key in ("text_encoder", "distillation", "history"):
        if key in loaded.meta:
            meta[key] = loaded.meta[key]
    if loaded.autoencoder is not None:
        meta["autoencoder"] = loaded.autoencoder.identity()
    return write_checkpoint(out, {"ema": state}, meta)


def export_diffusers(
    source: str | Path, out: str | Path, dtype: str = "float32", weights: str = "ema"
) -> Path:
    """Write a diffusers ``DDPMPipeline`` folder (``model_index.json``, ``unet/``, ``scheduler/``)
    that computes what the model computes: ``DDPMPipeline.from_pretrained(out)`` then samples as our
    ancestral sampler does. Class-conditional models keep their class table (with our "no label"
    row last); image- and text-conditional models, latent models and μ-prediction are refused."""
    if dtype not in DTYPES:
        raise UserError(f"unknown dtype {dtype!r}; choose float32, float16 or bfloat16")
    out = Path(out)
    if out.exists() and not (out / "model_index.json").is_file():
        raise UserError(f"{out} exists and is not a diffusers folder; choose a new --out")
    if is_autoencoder(read_meta(resolve_checkpoint(source))):
        raise UserError("an autoencoder has no diffusers pipeline form; export it with --format ddpm")
    loaded = load_model(source, device="cpu", weights=weights, channels_last=False)
    if loaded.autoencoder is not None:
        raise UserError("latent models have no DDPMPipeline form; export them with --format ddpm")
    c = loaded.config
    if c.diffusion.preconditioning != "none":
        raise UserError(
            "a preconditioned (EDM, consistency) model has no DDPMPipeline form; export it with --format ddpm"
        )
    return write_diffusers_folder(out, loaded.model, c.diffusion, c.sample, DTYPES[dtype])


def _export_autoencoder(source: str | Path, out: Path, dtype: str) -> Path:
    loaded = load_autoencoder(source)
    state = {k: v.to(DTYPES[dtype]) for k, v in loaded.model.state_dict().items()}
    meta = {
        "kind": "inference",
        "model_type": "autoencoder",
        "config": {"autoencoder": to_dict(loaded.config)},
        "latent_scale_factor": loaded.scale_factor,
        "state": {
            k: loaded.meta.get("state", {}).get(k)
            for k in ("step", "images_seen", "elapsed_seconds", "torch_version")
        },
        "weights_dtype": dtype,
        "source": loaded.path.name,
    }
    return write_checkpoint(out, {"model": state}, meta)


__all__ = [
    "LoadedModel",
    "export_checkpoint",
    "export_diffusers",
    "load_model",
    "pretrained_names",
    "resolve_checkpoint",
]
