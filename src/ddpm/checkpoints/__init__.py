"""Checkpoints on disk: reading and writing models (safetensors + JSON, atomic), used by training
and by inference alike. This layer sits below both; it knows nothing of the training loop."""

from ddpm.checkpoints.files import (
    META_FILE,
    CheckpointDir,
    decode_bytes,
    encode_bytes,
    optimizer_from_tensors,
    optimizer_to_tensors,
    read_meta,
    read_tensors,
    write_checkpoint,
)

__all__ = [
    "META_FILE",
    "CheckpointDir",
    "decode_bytes",
    "encode_bytes",
    "optimizer_from_tensors",
    "optimizer_to_tensors",
    "read_meta",
    "read_tensors",
    "write_checkpoint",
]
