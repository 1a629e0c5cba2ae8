"""diffusers folders in and out: the layout ``DDPMPipeline.from_pretrained`` loads, read and written
with safetensors and JSON alone (diffusers itself is not needed).

    model_index.json                       the pipeline: which class each part is
    unet/config.json                       a ``UNet2DModel`` (see ``diffusers_unet``)
    unet/diffusion_pytorch_model.safetensors
    scheduler/scheduler_config.json        β schedule, prediction type, variance, clipping

A bare ``UNet2DModel`` folder (``config.json`` + weights) is read too, with diffusers' default
scheduler (DDPM's linear schedule, T = 1000). Read folders look like our own checkpoints to the rest
of the program: :func:`diffusers_meta` gives the ``checkpoint.json`` entries, :func:`diffusers_weights`
the U-Net's weights under our names. Pickled weights (``.bin``) are refused: never unpickle.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ddpm.checkpoints.diffusers_unet import (
    DIFFUSERS_VERSION,
    NULL_LABEL_KEY,
    unet_config_from_diffusers,
    unet_state_from_diffusers,
    unet_to_diffusers,
)
from ddpm.configuration import to_dict
from ddpm.errors import UserError
from ddpm.fileio import write_folder_atomic
from ddpm.models.unet import UNet, UNetConfig
from ddpm.process import DiffusionConfig
from ddpm.samplers import SamplerConfig
from ddpm.samplers.config import DEFAULT_SPACING

WEIGHTS = "diffusion_pytorch_model.safetensors"
SCHEDULES = {
    "linear": "linear",
    "cosine": "squaredcos_cap_v2",
    "sigmoid": "sigmoid",
    "scaled_linear": "scaled_linear",
}
PREDICTIONS = {"eps": "epsilon", "x0": "sample", "v": "v_prediction"}
VARIANCES = {"beta": "fixed_large", "beta_tilde": "fixed_small"}
LEARNED_RANGE = "learned_range"
OUT_CONV = "conv_out"  # diffusers' name of the U-Net's last convolution
# the sampler a diffusers scheduler class corresponds to (others: our default, ancestral)
SCHEDULER_SAMPLERS = {
    "DDPMScheduler": "ancestral",
    "DDIMScheduler": "ddim",
    "DPMSolverMultistepScheduler": "dpm++2m",
    "UniPCMultistepScheduler": "unipc-bh2",
    "EulerDiscreteScheduler": "euler",
    "EulerAncestralDiscreteScheduler": "euler-a",
    "HeunDiscreteScheduler": "heun",
}


def unet_folder(path: Path) -> Path | None:
    """The folder holding a ``UNet2DModel``'s config.json: ``path/unet`` of a pipeline, or ``path``."""
    for folder in (path / "unet", path):
        config = folder / "config.json"
        if config.is_file():
            try:
                kind = json.loads(config.read_text()).get("_class_name", "")
            except (ValueError, AttributeError):
                continue
            if kind.startswith("UNet"):
                return folder
    return None


def is_diffusers_folder(path: str | Path) -> bool:
    """Whether ``path`` is a diffusers pipeline folder or a bare U-Net folder."""
    path = Path(path)
    return path.is_dir() and ((path / "model_index.json").is_file() or unet_folder(path) is not None)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"{path} cannot be read as JSON ({err}); is the diffusers folder complete?") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} is not a JSON object")
    return data


def scheduler_config(diffusion: DiffusionConfig, sample: SamplerConfig) -> dict:
    """A ``DDPMScheduler`` configuration for our diffusion and ancestral-sampling options."""
    if diffusion.prediction_type not in PREDICTIONS:
        raise UserError(
            f"diffusers has no prediction type for {diffusion.prediction_type!r}; "
            f"export models that predict {', '.join(PREDICTIONS)}"
        )
    if diffusion.schedule == "cosine" and diffusion.cosine_s != 0.008:
        raise UserError(f"diffusers' cosine schedule has s = 0.008; this model's is {diffusion.cosine_s}")
    spacing = sample.spacing if sample.spacing != "auto" else DEFAULT_SPACING["ancestral"]
    return {
        "_class_name": "DDPMScheduler",
        "_diffusers_version": DIFFUSERS_VERSION,
        "num_train_timesteps": diffusion.num_timesteps,
        "beta_schedule": SCHEDULES[diffusion.schedule],
        "beta_start": diffusion.beta_start,
        "beta_end": diffusion.beta_end,
        "trained_betas": None,
        "rescale_betas_zero_snr": diffusion.zero_terminal_snr,
        "prediction_type": PREDICTIONS[diffusion.prediction_type],
        "variance_type": LEARNED_RANGE if diffusion.learned_variance else VARIANCES[sample.variance],
        "clip_sample": sample.clip_x0,
        "clip_sample_range": 1.0,
        "thresholding": sample.dynamic_threshold > 0,
        "dynamic_thresholding_ratio": sample.dynamic_threshold or 0.995,
        "sample_max_value": 1.0,
        "timestep_spacing": spacing if spacing in ("linspace", "leading", "trailing") else "leading",
        "steps_offset": 0,
    }


def diffusion_from_scheduler(config: dict) -> tuple[DiffusionConfig, dict]:
    """Our :class:`DiffusionConfig` and sampler options for a diffusers scheduler configuration."""
    kind = config.get("_class_name", "DDPMScheduler")
    if config.get("trained_betas") is not None:
        raise UserError(f"this {kind} lists its betas (trained_betas); ddpm reads named schedules only")
    schedule = {v: k for k, v in SCHEDULES.items()}.get(config.get("beta_schedule", "linear"))
    if schedule is None:
        raise UserError(
            f"beta_schedule {config['beta_schedule']!r} is not supported ({', '.join(SCHEDULES.values())})"
        )
    prediction = {v: k for k, v in PREDICTIONS.items()}.get(config.get("prediction_type", "epsilon"))
    if prediction is None:
        raise UserError(f"prediction_type {config['prediction_type']!r} is not supported")
    variance = config.get("variance_type", "fixed_small")
    learned = variance == LEARNED_RANGE
    if variance not in VARIANCES.values() and not learned:
        raise UserError(
            f"variance_type {variance!r} is not supported; ddpm reads fixed_small, fixed_large and "
            f"{LEARNED_RANGE} (Nichol & Dhariwal's interpolation)"
        )
    if config.get("clip_sample_range", 1.0) != 1.0:
        raise UserError("clip_sample_range other than 1 is not supported (ddpm clips x̂₀ to [-1, 1])")
    diffusion = DiffusionConfig(
        schedule=schedule,
        num_timesteps=config.get("num_train_timesteps", 1000),
        beta_start=config.get("beta_start", 0.0001),
        beta_end=config.get("beta_end", 0.02),
        zero_terminal_snr=config.get("rescale_betas_zero_snr", False),
        prediction_type=prediction,
        learned_variance=learned,
    )
    ratio = config.get("dynamic_thresholding_ratio", 0.995)
    sample = {
        "sampler": SCHEDULER_SAMPLERS.get(kind, "ancestral"),
        "variance": "learned" if learned else {v: k for k, v in VARIANCES.items()}[variance],
        "clip_x0": config.get("clip_sample", True),
        "dynamic_threshold": ratio if config.get("thresholding") else 0.0,
    }
    if config.get("timestep_spacing") in ("linspace", "leading", "trailing"):
        sample["spacing"] = config["timestep_spacing"]
    return diffusion, sample


def _scaled_variance_rows(state: dict[str, torch.Tensor], channels: int, scale: float, shift: float) -> dict:
    """``state`` with the last convolution's variance rows (after the first ``channels``) giving
    scale · output + shift: an exact affine map of their weights and biases."""
    out = dict(state)
    weight, bias = state[f"{OUT_CONV}.weight"].clone(), state[f"{OUT_CONV}.bias"].clone()
    weight[channels:] *= scale
    bias[channels:] = scale * bias[channels:] + shift
    out[f"{OUT_CONV}.weight"], out[f"{OUT_CONV}.bias"] = weight, bias
    return out


def learned_range_from_v(state: dict[str, torch.Tensor], channels: int) -> dict[str, torch.Tensor]:
    """The last convolution rewritten so its variance channels give diffusers' v_raw = 2v − 1 where
    ours give v in log σ² = v log β + (1 − v) log β̃ (diffusers' ``learned_range`` interpolates with
    (v_raw + 1)/2)."""
    return _scaled_variance_rows(state, channels, 2.0, -1.0)


def v_from_learned_range(state: dict[str, torch.Tensor], channels: int) -> dict[str, torch.Tensor]:
    """The inverse of :func:`learned_range_from_v`: v = (v_raw + 1)/2 on the variance channels."""
    return _scaled_variance_rows(state, channels, 0.5, 0.5)


def write_diffusers_folder(
    out: str | Path, model: UNet, diffusion: DiffusionConfig, sample: SamplerConfig, dtype=torch.float32
) -> Path:
    """Write ``model`` and its diffusion as a ``DDPMPipeline`` folder, atomically."""
    unet_config, state = unet_to_diffusers(model)
    if diffusion.learned_variance:
        state = learned_range_from_v(state, model.config.in_channels)
    scheduler = scheduler_config(diffusion, sample)
    index = {
        "_class_name": "DDPMPipeline",
        "_diffusers_version": DIFFUSERS_VERSION,
        "scheduler": ["diffusers", "DDPMScheduler"],
        "unet": ["diffusers", "UNet2DModel"],
    }

    def fill(tmp: Path) -> None:
        (tmp / "unet").mkdir()
        (tmp / "scheduler").mkdir()
        (tmp / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
        (tmp / "unet" / "config.json").write_text(json.dumps(unet_config, indent=2) + "\n")
        (tmp / "scheduler" / "scheduler_config.json").write_text(json.dumps(scheduler, indent=2) + "\n")
        save_file({k: v.to(dtype) for k, v in state.items()}, tmp / "unet" / WEIGHTS, {"format": "pt"})

    return write_folder_atomic(Path(out), fill)


def diffusers_meta(path: str | Path) -> dict:
    """The ``checkpoint.json`` entries of a diffusers folder: the experiment configuration (U-Net,
    diffusion, sampler; the data section names only the image shape) and where it came from."""
    path = Path(path)
    folder = unet_folder(path)
    if folder is None:
        raise UserError(f"{path} has no UNet2DModel (unet/config.json); ddpm reads UNet2DModel pipelines")
    unet = unet_config_from_diffusers(_read_json(folder / "config.json"))
    scheduler = _scheduler(path)
    diffusion, sample = diffusion_from_scheduler(scheduler)
    unet = _prediction_channels(unet, diffusion)
    return {
        "kind": "diffusers",
        "config": {
            "model": to_dict(unet),
            "diffusion": to_dict(diffusion),
            "sample": sample,
            "data": {"dataset": "folder", "image_size": unet.image_size, "channels": unet.in_channels},
        },
        "scheduler_class": scheduler.get("_class_name", "DDPMScheduler (default)"),
        "source": str(path),
        "state": {},
    }


def _prediction_channels(unet: UNetConfig, diffusion: DiffusionConfig) -> UNetConfig:
    """A learned-variance U-Net's configuration as ours stores it: the prediction's channels (the
    network doubles them itself); refused when the output is not prediction + variance."""
    if not diffusion.learned_variance:
        return unet
    if unet.output_channels != 2 * unet.in_channels:
        raise UserError(
            f"a {LEARNED_RANGE} scheduler needs a UNet2DModel with out_channels = 2 × in_channels "
            f"(prediction, then variance); this one has {unet.output_channels}"
        )
    return replace(unet, out_channels=0)


def _scheduler(path: Path) -> dict:
    file = path / "scheduler" / "scheduler_config.json"
    return _read_json(file) if file.is_file() else {}


def diffusers_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The U-Net's weights of a diffusers folder, under our names, in float32."""
    path = Path(path)
    folder = unet_folder(path)
    if folder is None:
        raise UserError(f"{path} has no UNet2DModel (unet/config.json)")
    config = _read_json(folder / "config.json")
    file = folder / WEIGHTS
    if not file.is_file():
        pickled = sorted(p.name for p in folder.glob("*.bin"))
        hint = (
            f"; it has {pickled[0]} (pickle), which ddpm never loads: convert it to safetensors first"
            if pickled
            else ""
        )
        raise UserError(f"{folder} has no {WEIGHTS}{hint}")
    try:
        state = load_file(file)
    except (SafetensorError, OSError, ValueError) as err:
        raise UserError(f"{file} is corrupt ({err}); use another copy") from None
    unet = unet_config_from_diffusers(config)
    state = {k: v.float() for k, v in state.items()}
    if _scheduler(path).get("variance_type") == LEARNED_RANGE:
        state = v_from_learned_range(state, unet.in_channels)
    return unet_state_from_diffusers(unet, state, null_row=config.get(NULL_LABEL_KEY) is not None)
