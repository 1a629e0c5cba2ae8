"""A shipped model moved to the diffusers middle-block order (ResNet → attention → ResNet) by
fine-tuning: its quality before, right after the reorder (no training), and after fine-tuning.

    ddpm train --config fashion-mnist --train.init_from fashion-mnist --out runs/convert/fashion-mnist \\
        --train.steps 900 --train.lr 2e-4 --train.warmup_steps 50 --train.lr_schedule constant
    python benchmarks/mid_block_conversion.py --name fashion-mnist --run runs/convert/fashion-mnist

Run it before the converted weights replace the shipped ones (its first arm loads the shipped model).
Every arm samples with the model's own sampler (the same seed) and is scored by domain FD, FID and
precision / recall in the domain classifier's space (Fashion-MNIST), against the same real images.
Writes results/mid_block_conversion_NAME.{json,md}.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import fashion_quality, write_results

from ddpm.models.unet import reorder_mid_block
from ddpm.pipelines import load_model
from ddpm.pipelines.evaluate import EvalConfig, evaluate

NEW = "resnet-attention-resnet"


def reordered(name: str):
    """The shipped model with its attention moved after the first ResNet block, not trained."""
    loaded = load_model(name, device="cpu", channels_last=False)
    state = reorder_mid_block(loaded.model.state_dict(), loaded.config.model.mid_block_order, NEW)
    loaded.config.model.mid_block_order = NEW
    model = type(loaded.model)(loaded.config.model)
    model.load_state_dict(state)
    loaded.model = model.eval().requires_grad_(False)
    return loaded


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", default="fashion-mnist", help="the shipped model")
    p.add_argument("--run", required=True, help="the fine-tuning run folder")
    p.add_argument("--num", type=int, default=1000, help="samples (and real images) per arm")
    p.add_argument("--steps", default="", help="comma-separated checkpoint steps to score (default: last)")
    args = p.parse_args()
    run = Path(args.run)
    checkpoints = sorted((run / "checkpoints").glob("step-*"))
    chosen = [c for c in checkpoints if str(int(c.name[5:])) in args.steps.split(",")] or checkpoints[-1:]
    arms = {
        "shipped (old order)": lambda: load_model(args.name, device="cpu"),
        "reordered, no training": lambda: reordered(args.name),
    }
    for c in chosen:
        arms[f"fine-tuned {int(c.name[5:])} steps"] = lambda c=c: load_model(c, device="cpu")
    metrics = ("fd-domain", "fid", "pr", "classes")
    results = {}
    for label, load in arms.items():
        loaded = load()
        report = evaluate(loaded, EvalConfig(metrics=metrics, num=args.num, progress=False))
        results[label] = fashion_quality(report)
        print(label, {k: v for k, v in results[label].items() if k != "sampler"}, flush=True)
    first = next(iter(results.values()))
    lines = [
        f"`{args.name}` moved to the middle-block order ResNet → attention → ResNet; {args.num} samples "
        f"per arm with the model's sampler, against {args.num} test images (floors: domain FD "
        f"{first['fd_domain_floor']:.1f}, FID {first['fid_floor']:.1f}).",
        "",
        "| model | domain FD | FID | precision | recall | class entropy |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, r in results.items():
        lines.append(
            f"| {label} | {r['fd_domain']:.1f} | {r['fid']:.1f} | {r['precision']:.3f} | "
            f"{r['recall']:.3f} | {r['class_entropy']:.3f} |"
        )
    write_results(f"mid_block_conversion_{args.name}", {"num": args.num, "arms": results}, lines)


if __name__ == "__main__":
    main()
