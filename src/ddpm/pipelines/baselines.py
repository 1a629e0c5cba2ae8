"""Loading and sampling the baseline generative models (GAN, VAE, flow): one network pass per image.

Image i of a seed depends only on (seed, i), as for diffusion models: its latent z is drawn from
its own generator (:func:`~ddpm.samplers.noise.image_generators`), whatever the batch size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ddpm.checkpoints import read_meta, read_tensors
from ddpm.configuration import from_dict
from ddpm.errors import UserError
from ddpm.models.baselines import BaselineConfig, build_baseline
from ddpm.pipelines.experiment import ExperimentConfig
from ddpm.pipelines.locate import resolve_checkpoint
from ddpm.runtime import progress_bar, resolve_device
from ddpm.samplers.noise import image_generators, randn
from ddpm.training.baseline_objectives import flow_negative_log_likelihood, vae_bits_per_dim

FAMILY_NAMES = {"gan": "GAN", "vae": "VAE", "flow": "normalising flow"}


def is_baseline(meta: dict) -> bool:
    """Whether a checkpoint's ``checkpoint.json`` describes a GAN, VAE or flow baseline."""
    return meta.get("model_type") == "baseline"


@dataclass(kw_only=True)
class LoadedBaseline:
    """A trained baseline in eval mode, with its configuration."""

    model: torch.nn.Module
    config: ExperimentConfig
    meta: dict
    path: Path

    @property
    def baseline(self) -> BaselineConfig:
        return self.config.baseline

    @property
    def family(self) -> str:
        return self.baseline.family

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c = self.baseline
        return (c.in_channels, c.image_size, c.image_size)

    @property
    def noise_shape(self) -> tuple[int, ...]:
        """Shape of one image's latent: z of the GAN or VAE, or the flow's C·H·W numbers."""
        return (self.baseline.dims,) if self.family == "flow" else (self.baseline.latent_dim,)

    @torch.no_grad()
    def from_noise(self, z: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """Images in [−1, 1] from latents z (B, *noise_shape): G_ema(z), the VAE decoder mean m(z),
        or the flow's f⁻¹(temperature · z)."""
        if self.family == "gan":
            return self.model.generator_ema(z).clamp(-1, 1)
        if self.family == "vae":
            return self.model.decode(z).clamp(-1, 1)
        return self.model.inverse(temperature * z).clamp(-1, 1)


def load_baseline(name_or_path: str | Path, device: str = "auto") -> LoadedBaseline:
    """Load a baseline checkpoint (run folder, checkpoint folder or pretrained name)."""
    path = resolve_checkpoint(name_or_path)
    meta = read_meta(path)
    if not is_baseline(meta):
        raise UserError(f"{name_or_path} is not a GAN, VAE or flow baseline")
    try:
        config = from_dict(ExperimentConfig, meta.get("config", {}))
    except UserError as err:
        raise UserError(f"checkpoint {path} has a damaged configuration: {err}") from None
    model = build_baseline(config.baseline)
    try:
        model.load_state_dict(read_tensors(path, "model"))
    except (RuntimeError, KeyError) as err:
        first = next((line.strip() for line in str(err).splitlines()[1:] if line.strip()), str(err))
        raise UserError(f"weights in {path} do not match its configuration: {first}") from None
    model = model.to(resolve_device(device)).eval().requires_grad_(False)
    return LoadedBaseline(model=model, config=config, meta=meta, path=path)


def generate_baseline(
    loaded: LoadedBaseline,
    num: int,
    seed: int = 0,
    batch_size: int = 64,
    temperature: float = 1.0,
    progress: bool = True,
) -> torch.Tensor:
    """``num`` images (float, [−1, 1], on the CPU) in one network pass each."""
    if not math.isfinite(temperature) or temperature <= 0:
        raise UserError(f"--temperature must be a positive number, got {temperature}")
    if temperature != 1.0 and loaded.family != "flow":
        raise UserError(f"--temperature applies to the flow; a {FAMILY_NAMES[loaded.family]} samples at 1")
    device = next(loaded.model.parameters()).device
    out = []
    batches = range(0, num, batch_size)
    for start in progress_bar(batches, desc="sampling", enabled=progress and len(batches) > 1):
        n = min(batch_size, num - start)
        z = randn((n, *loaded.noise_shape), image_generators(seed, start, n), device=device)
        out.append(loaded.from_noise(z, temperature).float().cpu())
    return torch.cat(out)


@torch.no_grad()
def baseline_bits_per_dim(
    loaded: LoadedBaseline, images: torch.Tensor, seed: int = 0, batch_size: int = 100, progress: bool = False
) -> np.ndarray:
    """Per image, −log p in bits/dim of uint8 ``images`` under the flow (exact, given one uniform
    dequantisation) or the VAE's negative ELBO (an upper bound, one z per image); a GAN has none."""
    if loaded.family == "gan":
        raise UserError("a GAN defines no likelihood; measure it with fid, kid or pr")
    device = next(loaded.model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    out = []
    batches = range(0, len(images), batch_size)
    for start in progress_bar(batches, desc="likelihood", enabled=progress and len(batches) > 1):
        x = images[start : start + batch_size].to(device)
        if loaded.family == "flow":
            bits = flow_negative_log_likelihood(loaded.model, x, g)
        else:
            bits = vae_bits_per_dim(loaded.model, x, g)
        out.append(bits.double().cpu().numpy())
    return np.concatenate(out)
