"""The diffusion process a model is trained on: its noise schedule and what the network predicts."""

from __future__ import annotations

from dataclasses import dataclass, field

from ddpm.process.parameterization import PREDICTION_TYPES
from ddpm.schedules import ScheduleConfig


@dataclass
class DiffusionConfig(ScheduleConfig):
    """A :class:`ScheduleConfig` plus the network's prediction target."""

    prediction_type: str = field(
        default="eps", metadata={"help": "what the network predicts: eps (DDPM), x0 or v"}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(
                f"unknown prediction_type {self.prediction_type!r}; "
                f"choose one of {', '.join(PREDICTION_TYPES)}"
            )
        if self.zero_terminal_snr and self.prediction_type == "eps":
            raise ValueError(
                "zero_terminal_snr makes ε-prediction undefined at the last step; use prediction_type v or x0"
            )
