"""Learned reverse variance against fixed β and β̃ on the same network and budget (Nichol & Dhariwal
2021: NLL 2.94 bits/dim on CIFAR-10 with L_hybrid, and much better FID at 50–100 respaced steps).

Two networks train for ``--minutes`` each with the same U-Net and data (``recipe_race.py``'s arms):
``learned-variance`` (ε plus v, L_hybrid = L_simple + 0.001 L_vlb) and ``demo`` (ε, L_simple).
Each is then measured with every variance it can use — learned (the first only), β and β̃ —
for the NLL bound in bits/dim on ``--nll-num`` test images (one pass of 1000 network calls per
image serves every variance) and domain FD of ``--num`` ancestral samples at each of ``--steps``
respaced steps. Evaluators of the two arms can run side by side; ``report`` writes the table.

    python benchmarks/learned_variance.py train --minutes 10
    python benchmarks/learned_variance.py evaluate --minutes 10 --arms demo --num 300 --steps 10,50
    python benchmarks/learned_variance.py report --minutes 10

Writes results/learned_variance.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch
from common import RESULTS, DomainProbe, write_results
from recipe_race import ROOT, train_ours

from ddpm.data import load_fashion_mnist
from ddpm.eval.nll import variational_bounds
from ddpm.imaging import to_model_range, to_uint8
from ddpm.models.denoiser import model_denoiser
from ddpm.pipelines import load_model
from ddpm.pipelines.generation import generate
from ddpm.samplers import SamplerConfig

ARMS = ("learned-variance", "demo")


def nll(loaded, images: torch.Tensor, variances: tuple[str, ...], batch: int = 32) -> dict:
    """Bits/dim (mean ± standard error over images) of the bound under each variance."""
    totals: dict[str, list] = {v: [] for v in variances}
    g = torch.Generator().manual_seed(0)
    denoise = model_denoiser(loaded.model)
    for s in range(0, len(images), batch):
        x0 = to_model_range(images[s : s + batch]).double()
        bounds = variational_bounds(denoise, x0, loaded.schedule, "eps", variances, clip_x0=True, generator=g)
        for v in variances:
            totals[v].append(bounds[v].total)
    out = {}
    for v in variances:
        total = np.concatenate(totals[v])
        out[v] = {
            "bits_per_dim": float(total.mean()),
            "stderr": float(total.std(ddof=1) / math.sqrt(len(total))),
        }
    return out


def evaluate_arm(arm: str, run: Path, args, probe: DomainProbe) -> list[dict]:
    loaded = load_model(run)
    learned = loaded.config.diffusion.learned_variance
    variances = ("learned", "beta", "beta_tilde") if learned else ("beta", "beta_tilde")
    info = json.loads((run / "arm.json").read_text())
    test = load_fashion_mnist(split="test").images[: args.nll_num]
    bounds = nll(loaded, test, variances)
    rows = []
    for variance in variances:
        row = {"arm": arm, "variance": variance, "steps_trained": info["steps"], **bounds[variance]}
        for steps in (int(s) for s in args.steps.split(",")):
            sampler = SamplerConfig(sampler="ancestral", steps=steps, variance=variance, spacing="trailing")
            images = generate(
                loaded, args.num, seed=0, sampler=sampler, batch_size=100, progress=False
            ).images
            row[f"fd_{steps}"] = probe(to_uint8(images))["domain_fd"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def report(path: Path) -> None:
    result = json.loads(path.read_text())
    steps = result["steps"]
    lines = [
        f"{result['minutes']:g} min of training per network on {result['threads']} thread(s); NLL bound "
        f"on {result['nll_num']} test images; domain FD of {result['num']} ancestral samples (floor "
        f"{result['floor']['domain_fd']:.1f}); {result['note']}",
        "",
        "| network | steps trained | variance | NLL bits/dim | "
        + " | ".join(f"FD @ {s} steps" for s in steps)
        + " |",
        "|---|---:|---|---:|" + "---:|" * len(steps),
    ]
    for r in result["rows"]:
        fds = " | ".join(f"{r[f'fd_{s}']:.1f}" for s in steps)
        lines.append(
            f"| {r['arm']} | {r['steps_trained']} | {r['variance']} | "
            f"{r['bits_per_dim']:.3f} ± {r['stderr']:.3f} | {fds} |"
        )
    write_results("learned_variance", result, lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("phase", choices=("train", "evaluate", "report"))
    p.add_argument("--minutes", type=float, default=10.0, help="training budget per network")
    p.add_argument("--runs", default=str(ROOT / "runs" / "learned-variance"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--num", type=int, default=300, help="ancestral samples per (variance, steps)")
    p.add_argument("--nll-num", type=int, default=32, help="test images for the bound")
    p.add_argument("--steps", default="10,50", help="respaced ancestral steps")
    p.add_argument("--arms", default=",".join(ARMS))
    p.add_argument("--note", default="", help="what else was running (goes into the result)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    runs = Path(args.runs) / f"{args.minutes:g}min"
    path = RESULTS / "learned_variance.json"
    if args.phase == "report":
        return report(path)
    arms = args.arms.split(",")
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise SystemExit(f"unknown arm(s) {unknown}; choose from {list(ARMS)}")
    if args.phase == "train":
        for arm in arms:
            if not (runs / arm / "arm.json").exists():
                train_ours(arm, runs / arm, args.minutes, args.minutes, args.threads)
        return None
    probe = DomainProbe(args.num)
    train = load_fashion_mnist(split="train").images
    floor = probe(train[torch.randperm(len(train), generator=torch.Generator().manual_seed(7))[: args.num]])
    for arm in arms:
        rows = evaluate_arm(arm, runs / arm, args, probe)
        # re-read before writing, so evaluators of different arms can run side by side
        done = json.loads(path.read_text()) if path.exists() else {"rows": []}
        if done.get("minutes") != args.minutes:
            done = {"rows": []}
        path.parent.mkdir(parents=True, exist_ok=True)
        result = {
            "minutes": args.minutes,
            "threads": args.threads,
            "num": args.num,
            "nll_num": args.nll_num,
            "steps": [int(s) for s in args.steps.split(",")],
            "floor": {"domain_fd": floor["domain_fd"]},
            "note": args.note,
            "rows": [r for r in done["rows"] if r["arm"] != arm] + rows,
        }
        path.write_text(json.dumps(result, indent=2) + "\n")
    return report(path)


if __name__ == "__main__":
    main()
