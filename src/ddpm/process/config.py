"""The diffusion process a model is trained on: its noise schedule and what the network predicts."""

from __future__ import annotations

from dataclasses import dataclass, field

from ddpm.process.parameterization import PREDICTION_TYPES
from ddpm.schedules import ScheduleConfig
from ddpm.validation import InvalidValue, require_choice


@dataclass
class DiffusionConfig(ScheduleConfig):
    """A :class:`ScheduleConfig` plus the network's prediction target."""

    prediction_type: str = field(
        default="eps",
        metadata={"help": "what the network predicts: eps (DDPM), x0, v, or mu (the reverse-process mean)"},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        require_choice("prediction_type", self.prediction_type, PREDICTION_TYPES)
        if self.zero_terminal_snr and self.prediction_type == "eps":
            raise InvalidValue(
                "prediction_type",
                "must be v or x0 with zero_terminal_snr (ε-prediction is undefined at the last step)",
                self.prediction_type,
            )
