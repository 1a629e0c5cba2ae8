"""Loading a trained KL autoencoder for latent diffusion, and the digest that identifies it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from ddpm.checkpoints import read_meta, read_tensors
from ddpm.configuration import from_dict
from ddpm.errors import UserError
from ddpm.models.autoencoder import Autoencoder, AutoencoderConfig
from ddpm.pipelines.locate import pretrained_names, resolve_checkpoint
from ddpm.runtime import resolve_device


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a state dict's contents (names, dtypes, shapes, values), independent of how the
    file was serialised: the identity of an autoencoder that latent models record."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def is_autoencoder(meta: dict) -> bool:
    """Whether a checkpoint's ``checkpoint.json`` describes an autoencoder (not a diffusion model)."""
    return meta.get("model_type") == "autoencoder"


@dataclass(kw_only=True)
class LoadedAutoencoder:
    """A frozen KL autoencoder with its latent scale factor: latent diffusion works on
    ``scale_factor · z`` and decodes ``z = x_latent / scale_factor``."""

    model: Autoencoder
    config: AutoencoderConfig
    scale_factor: float
    digest: str
    source: str
    meta: dict
    path: Path

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Images in [−1, 1] from scaled latents (the diffusion model's x)."""
        device = next(self.model.parameters()).device
        z = latents.to(device=device, dtype=torch.float32) / self.scale_factor
        return self.model.decode(z).clamp(-1, 1).float().cpu()

    def identity(self) -> dict:
        """What a latent model records about its autoencoder (``checkpoint.json`` → ``autoencoder``)."""
        return {"source": self.source, "digest": self.digest, "scale_factor": self.scale_factor}


def load_autoencoder(name_or_path: str | Path, device: str = "cpu") -> LoadedAutoencoder:
    """Load a trained autoencoder (pretrained name, checkpoint or run folder), frozen, in eval mode.

    ``source`` is kept as a pretrained name when it is one, otherwise as an absolute path."""
    path = resolve_checkpoint(name_or_path)
    meta = read_meta(path)
    if not is_autoencoder(meta):
        raise UserError(
            f"{name_or_path} is a diffusion model, not an autoencoder; give a run of "
            "'ddpm train --config faces64-autoencoder' (or a pretrained autoencoder name)"
        )
    try:
        config = from_dict(AutoencoderConfig, meta["config"]["autoencoder"])
        scale = float(meta["latent_scale_factor"])
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(
            f"checkpoint {path} lacks its autoencoder configuration or scale factor ({err})"
        ) from None
    state = read_tensors(path, "model")
    model = Autoencoder(config)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = next((line.strip() for line in str(err).splitlines()[1:] if line.strip()), str(err))
        raise UserError(f"weights in {path} do not match its configuration: {first}") from None
    model = model.to(resolve_device(device)).eval().requires_grad_(False)
    named = str(name_or_path) in pretrained_names() and not Path(name_or_path).exists()
    source = str(name_or_path) if named else str(path.resolve())
    return LoadedAutoencoder(
        model=model,
        config=config,
        scale_factor=scale,
        digest=weights_digest(state),
        source=source,
        meta=meta,
        path=path,
    )


def autoencoder_of(meta: dict, override: str | Path | None = None, device: str = "cpu") -> LoadedAutoencoder:
    """The autoencoder a latent model's ``checkpoint.json`` names (or ``override``), checked
    against the recorded digest: a different one is refused with a one-line error."""
    record = meta.get("autoencoder") or {}
    source = override or record.get("source")
    if not source:
        raise UserError("this latent model does not record its autoencoder; give one with --autoencoder")
    loaded = load_autoencoder(source, device)
    if record.get("digest") and loaded.digest != record["digest"]:
        raise UserError(
            f"autoencoder {source} is not the one this latent model was trained with (weights digest "
            f"{loaded.digest[:12]}, expected {record['digest'][:12]}); give the right one with --autoencoder"
        )
    return loaded
