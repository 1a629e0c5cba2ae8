"""Configurations read back from runs and checkpoints written by earlier versions."""

from __future__ import annotations

from ddpm.configuration import merge
from ddpm.models.unet import LEGACY_MID_BLOCK_ORDER

# Options added after checkpoints had been written, with the value that rebuilds those checkpoints.
LEGACY_DEFAULTS = {"model": {"mid_block_order": LEGACY_MID_BLOCK_ORDER}}


def with_legacy_defaults(stored: dict) -> dict:
    """A configuration saved with a run or checkpoint, with each option it predates set to the value
    that rebuilds the same network (a checkpoint stores every option that existed when it was written)."""
    return merge(stored, _missing(LEGACY_DEFAULTS, stored)) if isinstance(stored, dict) else stored


def _missing(defaults: dict, stored: dict) -> dict:
    """The entries of ``defaults`` (nested) that ``stored`` lacks."""
    out = {}
    for key, value in defaults.items():
        if isinstance(value, dict):
            inner = stored.get(key, {})
            sub = _missing(value, inner) if isinstance(inner, dict) else {}
            if sub:
                out[key] = sub
        elif key not in stored:
            out[key] = value
    return out
