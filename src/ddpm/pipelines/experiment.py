"""An experiment = model + diffusion + data + training + sampling settings, read from TOML."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ddpm.configuration import from_dict, merge, to_dict
from ddpm.data import DataConfig, condition_channels, load_dataset, load_streaming, task_condition
from ddpm.errors import UserError
from ddpm.models import UNetConfig
from ddpm.models.autoencoder import AutoencoderConfig
from ddpm.models.baselines import BaselineConfig
from ddpm.pipelines.fine_tuning import initial_weights
from ddpm.pipelines.latent import LatentConfig, check_latent_sampler, checked_autoencoder, latent_examples
from ddpm.pipelines.stored_config import LEGACY_DEFAULTS
from ddpm.process import DiffusionConfig
from ddpm.runtime import set_threads
from ddpm.samplers import SamplerConfig
from ddpm.training import TrainConfig, TrainingRun, TrainResult, train
from ddpm.training.autoencoder_objective import AutoencoderLossConfig
from ddpm.training.autoencoder_trainer import AutoencoderRun, train_autoencoder
from ddpm.training.baseline_trainer import BaselineRun, train_baseline
from ddpm.training.conditioning import TextContext
from ddpm.training.streamed_examples import StreamedExamples

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(kw_only=True)
class ExperimentConfig:
    """The sections of a configuration file: [model], [diffusion], [data], [train], [sample], and
    [latent] (diffuse an autoencoder's latents); an autoencoder run (train.objective =
    "autoencoder") reads [autoencoder] and [autoencoder_loss] instead of the diffusion sections,
    a baseline run (train.objective = "baseline": GAN, VAE or flow) reads [baseline]."""

    model: UNetConfig = field(default_factory=UNetConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SamplerConfig = field(default_factory=SamplerConfig)
    latent: LatentConfig = field(default_factory=LatentConfig)
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    autoencoder_loss: AutoencoderLossConfig = field(default_factory=AutoencoderLossConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)


def bundled_configs() -> list[str]:
    """Names of the configuration files shipped with the package."""
    folder = resources.files("ddpm") / "configs"
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def read_toml(name_or_path: str) -> dict:
    """Parse a TOML file given by path, or by the name of a bundled configuration."""
    path = Path(name_or_path)
    if not path.is_file():
        bundled = resources.files("ddpm") / "configs" / f"{name_or_path}.toml"
        if not bundled.is_file():
            raise UserError(
                f"configuration {name_or_path!r} is neither a file nor a bundled config "
                f"({', '.join(bundled_configs())})"
            )
        text = bundled.read_text()
    else:
        text = path.read_text()
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise UserError(f"configuration {name_or_path} is not valid TOML: {err}") from None


def load_experiment_config(source: str | dict | None, overrides: dict | None = None) -> ExperimentConfig:
    """Build an :class:`ExperimentConfig` from a TOML file/name or a dict, then apply overrides."""
    data = source if isinstance(source, dict) else (read_toml(source) if source else {})
    return from_dict(ExperimentConfig, merge(data, overrides or {}))


def run_training(
    config: ExperimentConfig, out_dir: str | Path, *, resume: bool = False, progress: bool = True
) -> TrainResult:
    """Load the configured data and train; see :func:`ddpm.training.train` (and
    :func:`ddpm.training.autoencoder_trainer.train_autoencoder` for train.objective autoencoder)."""
    if config.train.objective in ("autoencoder", "baseline") and config.latent.autoencoder:
        raise UserError(f"an {config.train.objective} run trains in pixel space; drop latent.autoencoder")
    if config.train.objective in ("autoencoder", "baseline") and config.train.init_from:
        raise UserError(
            f"train.init_from starts diffusion models; an {config.train.objective} run starts fresh"
        )
    start = initial_weights(config.train.init_from, config.model) if config.train.init_from else None
    set_threads(config.train.num_threads)  # data preparation (encoding latents) shares the budget
    coder = None
    if config.latent.autoencoder:
        if config.data.task != "none":
            raise UserError("image-to-image tasks (data.task) are not available for latent models yet")
        check_latent_sampler(config.sample)
        coder = checked_autoencoder(config.latent, config.model, config.data, config.train.device)
    if config.data.streaming:
        return _train_streaming(config, out_dir, start, resume, progress)
    dataset = load_dataset(config.data)
    _check_size(len(dataset.images), dataset.name, config.train.batch_size)
    if config.train.objective == "autoencoder":
        run = AutoencoderRun(
            autoencoder=config.autoencoder,
            loss=config.autoencoder_loss,
            train=config.train,
            full_config=to_dict(config),
            config_defaults=merge(to_dict(ExperimentConfig()), LEGACY_DEFAULTS),
        )
        return train_autoencoder(run, dataset.images, out_dir, resume=resume, progress=progress)
    if config.train.objective == "baseline":
        if config.data.task != "none":
            raise UserError("the GAN, VAE and flow baselines are unconditional; drop data.task")
        run = BaselineRun(
            baseline=config.baseline,
            train=config.train,
            full_config=to_dict(config),
            config_defaults=merge(to_dict(ExperimentConfig()), LEGACY_DEFAULTS),
        )
        return train_baseline(run, dataset.images, out_dir, resume=resume, progress=progress)
    names = dataset.class_names if config.model.num_classes else ()
    if config.model.num_classes and dataset.class_names and len(names) != config.model.num_classes:
        raise UserError(
            f"model.num_classes = {config.model.num_classes} but {dataset.name} has {len(names)} classes"
        )
    _check_image_condition(config)
    text, metadata, latents = None, {}, None
    if coder is not None:
        latents = latent_examples(config.latent, coder, dataset.images, progress)
        metadata = {"autoencoder": coder.identity()}
    if config.model.context_dim:
        text, text_meta = encode_captions(dataset, config.model.context_dim, progress)
        metadata.update(text_meta)
    run = _diffusion_run(config, start, tuple(names), metadata)
    return train(
        run,
        dataset.images,
        out_dir,
        labels=dataset.labels,
        image_condition=task_condition(config.data.task, config.data.cond_augment),
        text=text,
        latents=latents,
        resume=resume,
        progress=progress,
    )


def _check_image_condition(config: ExperimentConfig) -> None:
    if (config.data.cond_augment > 0) != config.model.aug_level:
        raise UserError("data.cond_augment > 0 and model.aug_level = true go together (cascade SR stages)")
    need = condition_channels(config.data.task, config.model.in_channels)
    if config.model.cond_channels != need:
        raise UserError(
            f"data.task {config.data.task!r} feeds {need} conditioning channel(s); "
            f"set model.cond_channels = {need}"
        )


def _diffusion_run(config: ExperimentConfig, start, class_names=(), metadata=None) -> TrainingRun:
    return TrainingRun(
        model=config.model,
        diffusion=config.diffusion,
        train=config.train,
        sample=config.sample,
        full_config=to_dict(config),
        class_names=class_names,
        metadata=metadata or {},
        config_defaults=merge(to_dict(ExperimentConfig()), LEGACY_DEFAULTS),
        initial_weights=start,
    )


def _check_size(num_images: int, name: str, batch_size: int) -> None:
    if num_images < batch_size:
        raise UserError(
            f"the data set {name} has {num_images} usable images, fewer than "
            f"train.batch_size = {batch_size}; lower train.batch_size or add images"
        )


def _train_streaming(config: ExperimentConfig, out_dir, start, resume: bool, progress: bool) -> TrainResult:
    """Train a pixel-space diffusion model on images read from disk as training goes."""
    if config.train.objective != "diffusion" or config.latent.autoencoder or config.model.context_dim:
        raise UserError(
            "data.streaming trains pixel-space diffusion models (unconditional, class- or "
            "image-conditional); drop it for autoencoders, baselines, latent and text models"
        )
    streamed = load_streaming(config.data)
    _check_size(len(streamed), streamed.name, config.train.batch_size)
    labels = streamed.labels if config.model.num_classes else None
    if config.model.num_classes and labels is None:
        raise UserError(
            "model.num_classes is set but the streamed data set has no labels (.cls files, label)"
        )
    if labels is not None and int(labels.max()) >= config.model.num_classes:
        raise UserError(
            f"labels reach {int(labels.max())} but model.num_classes = {config.model.num_classes}"
        )
    _check_image_condition(config)
    return train(
        _diffusion_run(config, start),
        StreamedExamples(streamed, workers=config.data.workers),
        out_dir,
        labels=labels,
        image_condition=task_condition(config.data.task, config.data.cond_augment),
        resume=resume,
        progress=progress,
    )


def encode_captions(dataset, context_dim: int, progress: bool = True):
    """Token states of every caption (and of the empty one) from the frozen text encoder, once."""
    from ddpm.models.text_encoder import WIDTH, TextEncoder

    if dataset.captions is None:
        raise UserError(
            f"model.context_dim is set but {dataset.name} has no captions; use the emoji data set"
        )
    if context_dim != WIDTH:
        raise UserError(f"the text encoder gives {WIDTH}-wide token states; set model.context_dim = {WIDTH}")
    encoder = TextEncoder()
    if progress:
        print(f"encoding {len(dataset.captions)} captions with the frozen text encoder …")
    states, mask = encoder(dataset.captions)
    null_states, null_mask = encoder([""])
    text = TextContext(states=states, mask=mask, null_states=null_states[0], null_mask=null_mask[0])
    return text, {"text_encoder": {"name": "all-MiniLM-L6-v2", "max_length": encoder.max_length}}
