"""Several processes, one model: PyTorch's DistributedDataParallel under ``torchrun``.

``torchrun --nproc_per_node N -m ddpm train ...`` (or multi-node with torchrun's ``--nnodes`` and
rendezvous flags) sets RANK, WORLD_SIZE and LOCAL_RANK; the trainer then splits every global batch
across the processes, averages gradients with DDP, and writes files from rank 0 only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True, kw_only=True)
class Topology:
    """This process's place among ``world`` processes."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def share(self, size: int) -> slice:
        """This rank's contiguous share of a global batch of ``size`` (which the world must divide)."""
        per = size // self.world
        return slice(self.rank * per, (self.rank + 1) * per)


def topology_from_env() -> Topology:
    """The topology torchrun describes in the environment (a single process without it)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return Topology(
        rank=int(os.environ.get("RANK", "0")), world=world, local_rank=int(os.environ.get("LOCAL_RANK", "0"))
    )


def start(topology: Topology, device: torch.device) -> None:
    """Join the process group (gloo on CPU, NCCL on CUDA) unless already joined or alone."""
    if topology.distributed and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def stop() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def mean_over_ranks(value: float, topology: Topology, device: torch.device) -> float:
    """The average of a scalar over all processes (itself when alone)."""
    if not topology.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t) / topology.world


def max_over_ranks(value: int, topology: Topology, device: torch.device) -> int:
    """The largest of an integer over all processes (itself when alone), so that all of them take
    the same branch (e.g. stop together: a rank that stopped alone would leave the others waiting
    in all-reduce)."""
    if not topology.distributed:
        return value
    t = torch.tensor([value], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())
