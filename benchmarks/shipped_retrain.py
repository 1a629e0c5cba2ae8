"""The shipped Fashion-MNIST model against the same configuration retrained with the leading recipe
of `recipe_race.py` (ε-prediction weighted by min-SNR-5), under one protocol in one run.

    ddpm train --config fashion-mnist --train.loss_weighting min-snr --train.min_snr_gamma 5 \\
        --train.steps 4000 --out runs/fm-minsnr
    python benchmarks/shipped_retrain.py --arm min-snr=runs/fm-minsnr --arm l-simple=fashion-mnist

Each arm is a label and a checkpoint (run folder or pretrained name), sampled with its own stored
sampler from the same seed and scored as `ddpm eval CHECKPOINT --metrics fid,fd-domain,pr,classes
--num 1000` scores it (FID and domain FD against the same test images, floors from training
images). Writes results/shipped_retrain.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import time

from common import fashion_quality, write_results

from ddpm.pipelines import load_model
from ddpm.pipelines.evaluate import EvalConfig, evaluate

METRICS = ("fid", "fd-domain", "pr", "classes")


def measure(checkpoint: str, num: int) -> dict:
    """One arm's metrics, with their floors and the sampler it used."""
    loaded = load_model(checkpoint, device="cpu")
    start = time.perf_counter()
    report = evaluate(loaded, EvalConfig(metrics=METRICS, num=num))
    return {
        "checkpoint": checkpoint,
        "loss_weighting": loaded.config.train.loss_weighting,
        **fashion_quality(report),
        "seconds": time.perf_counter() - start,
    }


def table(num: int, rows: dict) -> list[str]:
    first = next(iter(rows.values()))
    lines = [
        f"`fashion-mnist` recipes, {num} samples per arm with each model's stored sampler, against "
        f"{num} test images (floors: FID {first['fid_floor']:.2f}, "
        f"domain FD {first['fd_domain_floor']:.2f}).",
        "",
        "| arm | checkpoint | weighting | FID | domain FD | precision / recall (domain) | class entropy |",
        "|---|---|---|---:|---:|---|---:|",
    ]
    for label, r in rows.items():
        lines.append(
            f"| {label} | `{r['checkpoint']}` | {r['loss_weighting']} | {r['fid']:.2f} | "
            f"{r['fd_domain']:.2f} | {r['precision']:.3f} / {r['recall']:.3f} | {r['class_entropy']:.3f} |"
        )
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arm", action="append", required=True, help="LABEL=CHECKPOINT (repeatable)")
    p.add_argument("--num", type=int, default=1000, help="samples (and real images) per arm")
    args = p.parse_args()
    rows = {}
    for label, checkpoint in (a.split("=", 1) for a in args.arm):
        rows[label] = measure(checkpoint, args.num)
        print(label, json.dumps({k: v for k, v in rows[label].items() if k != "sampler"}), flush=True)
    write_results("shipped_retrain", {"num": args.num, "arms": rows}, table(args.num, rows))


if __name__ == "__main__":
    main()
