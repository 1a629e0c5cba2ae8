"""Splitting a step — across processes (DDP), into micro-batches, or recomputing activations —
gives the weights one plain step gives."""

import os
import subprocess
import sys

import pytest
import torch

from ddpm.training import train

from .helpers import assert_weights_close, digits_images, final_weights, tiny_run

ARGS = dict(steps=6, batch_size=8, checkpoint_every=6, lr_schedule="cosine", warmup_steps=2, hflip=True)


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    out = tmp_path_factory.mktemp("plain")
    train(tiny_run(**ARGS), digits_images(), out, progress=False)
    return final_weights(out)


def test_gradient_accumulation_matches_one_big_batch(tmp_path, plain):
    train(tiny_run(**ARGS, grad_accum_steps=4), digits_images(), tmp_path, progress=False)
    assert_weights_close(final_weights(tmp_path), plain)


def test_gradient_checkpointing_matches(tmp_path, plain):
    train(tiny_run(**ARGS, grad_checkpointing=True), digits_images(), tmp_path, progress=False)
    assert_weights_close(final_weights(tmp_path), plain)


def test_two_processes_with_gloo_match_one(tmp_path, plain):
    """torchrun, 2 CPU processes, global batch 8 = 2 × 4: the same weights as 1 process with batch 8."""
    flags = (
        "--config digits-tiny --no-progress --train.steps 6 --train.batch_size 8 --train.checkpoint_every 6 "
        "--train.lr_schedule cosine --train.warmup_steps 2 --train.hflip true --train.sample_every 0 "
        "--train.log_every 5"
    )
    args = [*flags.split(), "--out", str(tmp_path / "ddp")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "ddpm",
        "train",
        *args,
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert_weights_close(final_weights(tmp_path / "ddp"), plain)
    # rank 0 alone wrote: one log, one set of checkpoints, one closing message
    assert len((tmp_path / "ddp" / "log.jsonl").read_text().splitlines()) == 2
    assert done.stdout.count("trained to step 6") == 1
    assert not (tmp_path / "ddp" / "train.lock").exists()  # rank 0 held the run's lock, and let go


def _vote(rank: int, init_file: str, results) -> None:
    import torch.distributed as dist

    from ddpm.training.distributed import Topology, max_over_ranks

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        topology = Topology(rank=rank, world=2, local_rank=rank)
        results[rank] = (
            bool(max_over_ranks(int(rank == 1), topology, torch.device("cpu"))),  # one rank's deadline passed
            bool(max_over_ranks(0, topology, torch.device("cpu"))),
        )
    finally:
        dist.destroy_process_group()


def test_a_stop_on_one_rank_stops_every_rank(tmp_path):
    """A time limit seen by one process alone must stop all (else the others hang in all-reduce)."""
    import torch.multiprocessing as mp

    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_vote, args=(str(tmp_path / "init"), results), nprocs=2)
        assert dict(results) == {0: (True, False), 1: (True, False)}
