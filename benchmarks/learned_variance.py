"""Learned reverse variance against fixed β and β̃ on the same network and budget (Nichol & Dhariwal
2021: NLL 2.94 bits/dim on CIFAR-10 with L_hybrid, and much better FID at 50–100 respaced steps).

Two networks train for ``--minutes`` each with the same U-Net and data (``recipe_race.py``'s arms):
``learned-variance`` (ε plus v, L_hybrid = L_simple + 0.001 L_vlb) and ``demo`` (ε, L_simple).
Each is then measured with every variance it can use — learned (the first only), β and β̃ —
for the NLL bound in bits/dim on ``--nll-num`` test images and domain FD of ``--num`` ancestral
samples at each of ``--steps`` respaced steps.

    python benchmarks/learned_variance.py train --minutes 30
    python benchmarks/learned_variance.py evaluate --minutes 30 --num 500 --steps 10,25,50

Writes results/learned_variance.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch
from common import DomainProbe, write_results
from recipe_race import ROOT, train_ours

from ddpm.data import load_fashion_mnist
from ddpm.eval.nll import variational_bound
from ddpm.imaging import to_model_range, to_uint8
from ddpm.models.denoiser import model_denoiser
from ddpm.pipelines import load_model
from ddpm.pipelines.generation import generate
from ddpm.samplers import SamplerConfig

ARMS = ("learned-variance", "demo")


def nll(loaded, images: torch.Tensor, variance: str, batch: int = 32) -> dict:
    totals = []
    g = torch.Generator().manual_seed(0)
    for s in range(0, len(images), batch):
        x0 = to_model_range(images[s : s + batch]).double()
        terms = variational_bound(
            model_denoiser(loaded.model), x0, loaded.schedule, "eps", variance, clip_x0=True, generator=g
        )
        totals.append(terms.total)
    total = np.concatenate(totals)
    return {"bits_per_dim": float(total.mean()), "stderr": float(total.std(ddof=1) / math.sqrt(len(total)))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("phase", choices=("train", "evaluate"))
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--runs", default=str(ROOT / "runs" / "learned-variance"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--num", type=int, default=500, help="ancestral samples per (variance, steps)")
    p.add_argument("--nll-num", type=int, default=64, help="test images for the bound")
    p.add_argument("--steps", default="10,25,50", help="respaced ancestral steps")
    p.add_argument("--arms", default=",".join(ARMS))
    p.add_argument("--note", default="", help="what else was running")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    runs = Path(args.runs) / f"{args.minutes:g}min"
    arms = args.arms.split(",")
    if args.phase == "train":
        for arm in arms:
            if not (runs / arm / "arm.json").exists():
                train_ours(arm, runs / arm, args.minutes, args.minutes, args.threads)
        return
    probe = DomainProbe(args.num)
    train = load_fashion_mnist(split="train").images
    floor = probe(train[torch.randperm(len(train), generator=torch.Generator().manual_seed(7))[: args.num]])
    test = load_fashion_mnist(split="test").images[: args.nll_num]
    rows = []
    for arm in arms:
        loaded = load_model(runs / arm)
        variances = (
            ("learned", "beta", "beta_tilde")
            if loaded.config.diffusion.learned_variance
            else ("beta", "beta_tilde")
        )
        info = json.loads((runs / arm / "arm.json").read_text())
        for variance in variances:
            row = {
                "arm": arm,
                "variance": variance,
                "steps_trained": info["steps"],
                **nll(loaded, test, variance),
            }
            for steps in (int(s) for s in args.steps.split(",")):
                sampler = SamplerConfig(
                    sampler="ancestral", steps=steps, variance=variance, spacing="trailing"
                )
                images = generate(
                    loaded, args.num, seed=0, sampler=sampler, batch_size=100, progress=False
                ).images
                row[f"fd_{steps}"] = probe(to_uint8(images))["domain_fd"]
            rows.append(row)
            print(json.dumps(row), flush=True)
    steps = [int(s) for s in args.steps.split(",")]
    lines = [
        f"{args.minutes:g} min of training per network on {args.threads} thread(s); NLL bound on "
        f"{args.nll_num} test images; domain FD of {args.num} ancestral samples (floor "
        f"{floor['domain_fd']:.1f}); {args.note}",
        "",
        "| network | variance | NLL bits/dim | " + " | ".join(f"FD @ {s} steps" for s in steps) + " |",
        "|---|---|---:|" + "---:|" * len(steps),
    ]
    for r in rows:
        fds = " | ".join(f"{r[f'fd_{s}']:.1f}" for s in steps)
        lines.append(
            f"| {r['arm']} | {r['variance']} | {r['bits_per_dim']:.3f} ± {r['stderr']:.3f} | {fds} |"
        )
    write_results(
        "learned_variance",
        {"minutes": args.minutes, "num": args.num, "floor": floor, "note": args.note, "rows": rows},
        lines,
    )


if __name__ == "__main__":
    main()
