"""Checkpoints on disk: reading and writing models (safetensors + JSON, atomic), run folders and
their lock, used by training and by inference alike. This layer sits below both; it knows
nothing of the training loop."""

from ddpm.checkpoints.files import (
    META_FILE,
    CheckpointDir,
    decode_bytes,
    encode_bytes,
    has_tensors,
    optimizer_from_tensors,
    optimizer_to_tensors,
    read_meta,
    read_tensors,
    write_checkpoint,
)
from ddpm.checkpoints.run_folder import is_run_folder, refuse_writing_over_a_run
from ddpm.checkpoints.run_lock import RunLock

__all__ = [
    "META_FILE",
    "CheckpointDir",
    "decode_bytes",
    "encode_bytes",
    "has_tensors",
    "optimizer_from_tensors",
    "optimizer_to_tensors",
    "read_meta",
    "read_tensors",
    "RunLock",
    "is_run_folder",
    "refuse_writing_over_a_run",
    "write_checkpoint",
]
