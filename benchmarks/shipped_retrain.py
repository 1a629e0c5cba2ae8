"""The shipped Fashion-MNIST model against the same configuration retrained with the leading recipe
of `recipe_race.py` (ε-prediction weighted by min-SNR-5), under one protocol in one run.

    ddpm train --config fashion-mnist --train.loss_weighting min-snr --train.min_snr_gamma 5 \\
        --train.steps 4000 --out runs/fm-minsnr
    python benchmarks/shipped_retrain.py --arm min-snr=runs/fm-minsnr --arm l-simple=fashion-mnist

Each arm is a label and a checkpoint (run folder or pretrained name), sampled with its own stored
sampler from the same seed and scored as `ddpm eval CHECKPOINT --metrics fid,fd-domain,pr,classes
--num 1000` scores it (FID and domain FD against the same test images, floors from training
images). Arms not run now are carried from the previous results file, marked as earlier runs, when
they were measured with the same --num. Writes results/shipped_retrain.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import time

from common import RESULTS, write_results

from ddpm.pipelines import load_model
from ddpm.pipelines.evaluate import EvalConfig, evaluate

NAME = "shipped_retrain"
METRICS = ("fid", "fd-domain", "pr", "classes")


def measure(checkpoint: str, num: int, nll_num: int) -> dict:
    """One arm's metrics, with their floors and the sampler it used."""
    loaded = load_model(checkpoint, device="cpu")
    metrics = METRICS + (("nll",) if nll_num else ())
    start = time.perf_counter()
    report = evaluate(loaded, EvalConfig(metrics=metrics, num=num, nll_num=max(nll_num, 1)))
    m = report["metrics"]
    row = {
        "checkpoint": checkpoint,
        "loss_weighting": loaded.config.train.loss_weighting,
        "fid": m["fid"]["value"],
        "fid_floor": m["fid"]["floor"],
        "fd_domain": m["fd-domain"]["value"],
        "fd_domain_floor": m["fd-domain"]["floor"],
        "precision": m["pr"]["precision"],
        "recall": m["pr"]["recall"],
        "class_entropy": m["classes"]["normalised_entropy"],
        "sampler": report["sampler"],
        "seconds": time.perf_counter() - start,
    }
    if nll_num:
        row["nll_bits_per_dim"] = m["nll"]["value"]
        row["nll_num"] = nll_num
    return row


def table(num: int, rows: dict) -> list[str]:
    first = next(iter(rows.values()))
    lines = [
        f"`fashion-mnist` recipes, {num} samples per arm with each model's stored sampler, against "
        f"{num} test images (floors: FID {first['fid_floor']:.2f}, "
        f"domain FD {first['fd_domain_floor']:.2f}).",
        "",
        "| arm | checkpoint | weighting | FID | domain FD | precision / recall (domain) | class entropy "
        "| NLL (bits/dim) |",
        "|---|---|---|---:|---:|---|---:|---:|",
    ]
    for label, r in rows.items():
        nll = f"{r['nll_bits_per_dim']:.3f} ({r['nll_num']} images)" if "nll_bits_per_dim" in r else "–"
        mark = " *" if r.get("earlier_run") else ""
        lines.append(
            f"| {label}{mark} | `{r['checkpoint']}` | {r['loss_weighting']} | {r['fid']:.2f} | "
            f"{r['fd_domain']:.2f} | {r['precision']:.3f} / {r['recall']:.3f} | "
            f"{r['class_entropy']:.3f} | {nll} |"
        )
    if any(r.get("earlier_run") for r in rows.values()):
        lines += ["", "\\* carried from an earlier run of this script with the same --num."]
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arm", action="append", required=True, help="LABEL=CHECKPOINT (repeatable)")
    p.add_argument("--num", type=int, default=1000, help="samples (and real images) per arm")
    p.add_argument("--nll-num", type=int, default=0, help="also the NLL bound on this many test images")
    args = p.parse_args()
    arms = dict(a.split("=", 1) for a in args.arm)
    previous = RESULTS / f"{NAME}.json"
    rows = {}
    if previous.is_file():
        old = json.loads(previous.read_text())
        if old["num"] == args.num:
            rows = {k: {**v, "earlier_run": True} for k, v in old["arms"].items() if k not in arms}
    for label, checkpoint in arms.items():
        rows[label] = measure(checkpoint, args.num, args.nll_num)
        print(label, json.dumps({k: v for k, v in rows[label].items() if k != "sampler"}), flush=True)
    write_results(NAME, {"num": args.num, "arms": rows}, table(args.num, rows))


if __name__ == "__main__":
    main()
