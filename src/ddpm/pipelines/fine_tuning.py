"""Starting a training run from another model's weights (``train.init_from``): fine-tuning."""

from __future__ import annotations

import torch

from ddpm.checkpoints import has_tensors, read_meta, read_tensors
from ddpm.configuration import diff, from_dict, to_dict
from ddpm.errors import UserError
from ddpm.models import UNetConfig
from ddpm.models.unet import reorder_mid_block
from ddpm.pipelines.locate import resolve_checkpoint
from ddpm.pipelines.stored_config import with_legacy_defaults

# options that change no weight's shape or meaning
FREE_TO_CHANGE = ("dropout", "mid_block_order")


def initial_weights(source: str, model: UNetConfig) -> dict[str, torch.Tensor]:
    """The EMA weights of ``source`` (a checkpoint, run folder, diffusers folder or pretrained name)
    for a network configured as ``model``: the two must agree on every option but dropout and the
    middle block's order; a different order is converted with :func:`reorder_mid_block`."""
    path = resolve_checkpoint(source)
    meta = read_meta(path)
    stored = with_legacy_defaults(meta.get("config", {})).get("model")
    if meta.get("model_type") or not isinstance(stored, dict):
        raise UserError(f"train.init_from {source!r} is not a diffusion model's checkpoint")
    theirs = from_dict(UNetConfig, stored, "model.")
    mine_d, theirs_d = to_dict(model), to_dict(theirs)
    changed = [k for k in diff(mine_d, theirs_d) if k not in FREE_TO_CHANGE]
    if changed:
        raise UserError(
            f"train.init_from {source!r} has another network: it differs in "
            f"{', '.join('model.' + k for k in changed)}; give the same model settings (see 'ddpm info')"
        )
    weights = "ema" if has_tensors(path, "ema") else "model"
    state = {k: v.float() for k, v in read_tensors(path, weights).items()}
    return reorder_mid_block(state, theirs.mid_block_order, model.mid_block_order)
