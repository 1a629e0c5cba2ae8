"""``ddpm ema``: choose a run's EMA length after training (EDM2's post-hoc EMA)."""

from __future__ import annotations

import argparse

from ddpm.checkpoints import refuse_writing_over_a_run
from ddpm.pipelines.post_hoc_ema import post_hoc_ema_checkpoint


def add_parser(sub) -> None:
    p = sub.add_parser(
        "ema",
        help="make an EMA of any length from a run's EMA snapshots (post-hoc EMA)",
        description=(
            "A run trained with --train.ema_snapshot_every N keeps snapshots of two power-function "
            "EMAs (relative widths 0.05 and 0.10) in RUN/ema-snapshots/. This command rebuilds the "
            "power EMA of width --sigma-rel at the last snapshot (or at --step) as the least-squares "
            "combination of the snapshots (Karras et al. 2024, §3.2) and writes it as an inference "
            "checkpoint that 'ddpm sample' and 'ddpm eval' take."
        ),
    )
    p.add_argument("run", metavar="RUN", help="run folder trained with train.ema_snapshot_every > 0")
    p.add_argument("--sigma-rel", type=float, required=True, help="EMA width relative to the training length")
    p.add_argument("--out", required=True, help="folder to write (a new inference checkpoint)")
    p.add_argument("--step", type=int, help="use the snapshots up to this step (default: all)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    refuse_writing_over_a_run(args.out)
    path = post_hoc_ema_checkpoint(args.run, args.sigma_rel, args.out, args.step)
    print(f"wrote {path} (σ_rel {args.sigma_rel})")
    return 0
