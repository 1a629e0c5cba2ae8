"""The diffusion process a model is trained on: its noise schedule and what the network predicts."""

from __future__ import annotations

from dataclasses import dataclass, field

from ddpm.process.parameterization import PREDICTION_TYPES
from ddpm.schedules import ScheduleConfig
from ddpm.validation import InvalidValue, require_choice, require_number

PRECONDITIONINGS = ("none", "edm", "consistency")


@dataclass
class DiffusionConfig(ScheduleConfig):
    """A :class:`ScheduleConfig` plus the network's prediction target and preconditioning."""

    prediction_type: str = field(
        default="eps",
        metadata={"help": "what the network predicts: eps (DDPM), x0, v, or mu (the reverse-process mean)"},
    )

    preconditioning: str = field(
        default="none",
        metadata={
            "help": "none: the network's output is the prediction; edm: the network F sits inside "
            "D = c_skip x + c_out F(c_in x; c_noise) (Karras et al. 2022), which predicts x0; "
            "consistency: a consistency model f = c_skip x + (1 − c_skip) D_v (distilled students)"
        },
    )
    sigma_data: float = field(
        default=0.5, metadata={"help": "standard deviation of the data (EDM preconditioning and weighting)"}
    )

    learned_variance: bool = field(
        default=False,
        metadata={
            "help": "the network also outputs v per dimension and the reverse variance is "
            "exp(v log β + (1−v) log β̃) (Nichol & Dhariwal 2021), trained by L_hybrid"
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        require_choice("prediction_type", self.prediction_type, PREDICTION_TYPES)
        require_choice("preconditioning", self.preconditioning, PRECONDITIONINGS)
        require_number("sigma_data", self.sigma_data, 0, low_open=True)
        if self.preconditioning == "edm" and self.prediction_type != "x0":
            raise InvalidValue(
                "prediction_type",
                "must be x0 with preconditioning = edm (the preconditioned denoiser predicts x0)",
                self.prediction_type,
            )
        if self.learned_variance and (self.prediction_type == "mu" or self.preconditioning != "none"):
            raise InvalidValue(
                "learned_variance",
                "needs prediction_type eps, x0 or v and no preconditioning",
                self.learned_variance,
            )
        if self.preconditioning == "edm" and self.zero_terminal_snr:
            raise InvalidValue(
                "zero_terminal_snr", "cannot be used with a preconditioning (σ_max must be finite)", True
            )
        if self.zero_terminal_snr and self.prediction_type == "eps":
            raise InvalidValue(
                "prediction_type",
                "must be v or x0 with zero_terminal_snr (ε-prediction is undefined at the last step)",
                self.prediction_type,
            )
