"""What a training run is given (:class:`TrainingRun`) and what it returns (:class:`TrainResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ddpm.models import UNetConfig
from ddpm.process import DiffusionConfig
from ddpm.samplers import SamplerConfig
from ddpm.training.config import TrainConfig


@dataclass(kw_only=True)
class TrainingRun:
    """Everything a run needs besides the images. ``full_config`` (all sections, data included)
    is stored in every checkpoint so the run can be reproduced and resumed. ``config_defaults``
    fills keys that a checkpoint written by an older version lacks, so adding a setting whose
    default keeps the old behaviour does not block resuming."""

    model: UNetConfig
    diffusion: DiffusionConfig
    train: TrainConfig
    sample: SamplerConfig
    full_config: dict
    class_names: tuple[str, ...] = ()
    metadata: dict = field(default_factory=dict)
    config_defaults: dict = field(default_factory=dict)
    # the weights a new run starts from (train.init_from); a resumed run takes its checkpoint's
    initial_weights: dict | None = None


@dataclass(kw_only=True)
class TrainResult:
    checkpoint: Path
    step: int
    loss: float
    elapsed_seconds: float
    main_process: bool = True  # False on the other ranks of a torchrun job, which save nothing
