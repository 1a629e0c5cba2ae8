"""Task-level glue that the command line (and users) call."""

from ddpm.pipelines.experiment import ExperimentConfig, load_experiment_config, run_training
from ddpm.pipelines.generation import Generation, generate
from ddpm.pipelines.loading import (
    LoadedModel,
    export_checkpoint,
    export_diffusers,
    load_model,
    pretrained_names,
)

__all__ = [
    "ExperimentConfig",
    "Generation",
    "LoadedModel",
    "export_checkpoint",
    "export_diffusers",
    "generate",
    "load_experiment_config",
    "load_model",
    "pretrained_names",
    "run_training",
]
