"""Training: Algorithm 1 as a loss, and the loop with EMA, checkpoints and resume."""

from ddpm.training.config import TrainConfig, learning_rate
from ddpm.training.ema import EMA
from ddpm.training.objective import diffusion_loss
from ddpm.training.run import TrainingRun, TrainResult
from ddpm.training.trainer import train

__all__ = ["EMA", "TrainConfig", "TrainResult", "TrainingRun", "diffusion_loss", "learning_rate", "train"]
