"""Classifier-free guidance: quality against diversity of a class-conditional Fashion-MNIST model.

For each guidance scale w, the same number of samples of every class from fixed seeds, measured
by the project's domain classifier: accuracy (is the requested class what the classifier sees),
confident share, domain Fréchet distance to test images, precision and recall (k = 3, domain
features). The floor row is real train images (accuracy = the classifier's own). Writes
results/guidance_sweep.{json,md,png}; ``--save-images`` keeps each w's samples for
``sampler_nfe_fid.py``-style FID (``benchmarks/sampler_nfe_fid.py sets.npz``).

    python benchmarks/guidance_sweep.py CHECKPOINT [--per-class 100] [--scales 0,1,2,3,5,7]
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np
import torch
from common import RESULTS, DomainProbe, timed, write_results

from ddpm.data import load_fashion_mnist
from ddpm.eval.precision_recall import precision_recall
from ddpm.imaging import to_uint8
from ddpm.pipelines import generate, load_model


def measure(probe: DomainProbe, images: torch.Tensor, labels: torch.Tensor, ref_features) -> dict:
    feats, logits = probe.classifier.features_and_logits(images)
    precision, recall = precision_recall(ref_features, feats.numpy())
    return {
        **probe.from_outputs(feats, logits),
        "accuracy": float((logits.argmax(1) == labels).double().mean()),
        "precision": precision,
        "recall": recall,
    }


def plot(rows, floor, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ws = [r["guidance"] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(ws, [r["accuracy"] for r in rows], marker="o", label="class accuracy")
    a.plot(ws, [r["precision"] for r in rows], marker="s", label="precision")
    a.plot(ws, [r["recall"] for r in rows], marker="^", label="recall")
    a.set(xlabel="guidance scale w", ylim=(0, 1.02))
    a.legend()
    b.plot(ws, [r["domain_fd"] for r in rows], marker="o", label="samples")
    b.axhline(floor["domain_fd"], color="grey", linestyle="--", label="real vs real")
    b.set(xlabel="guidance scale w", ylabel="domain FD (lower is better)")
    b.legend()
    for ax in (a, b):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("--per-class", type=int, default=100)
    p.add_argument("--scales", default="0,1,2,3,5,7")
    p.add_argument("--steps", type=int, help="sampler steps (default: the model's)")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--device", default="cpu")
    p.add_argument("--save-images", help="write each scale's samples to this .npz")
    args = p.parse_args()

    loaded = load_model(args.checkpoint, device=args.device)
    if not loaded.config.model.num_classes:
        raise SystemExit(f"{args.checkpoint} is not class-conditional")
    sampler = loaded.config.sample
    if args.steps:
        sampler = replace(sampler, steps=args.steps)
    num_classes = loaded.config.model.num_classes
    labels = torch.arange(num_classes).repeat_interleave(args.per_class)
    num = len(labels)
    probe = DomainProbe(num)
    ref_features = probe.classifier.features_and_logits(probe.reference)[0].numpy()
    train = load_fashion_mnist(split="train")
    g = torch.Generator().manual_seed(99)
    pick = torch.randperm(len(train.images), generator=g)[:num]
    floor = measure(probe, train.images[pick], train.labels[pick], ref_features)
    rows, sets = [], {}
    for w in map(float, args.scales.split(",")):
        out, seconds = timed(
            generate,
            loaded,
            num,
            seed=0,
            sampler=sampler,
            class_labels=labels,
            guidance=w,
            batch_size=args.batch_size,
            progress=False,
        )
        images = to_uint8(out.images).cpu()
        sets[f"w={w:g}"] = images.numpy()
        row = {"guidance": w, "seconds": round(seconds, 1), **measure(probe, images, labels, ref_features)}
        rows.append(row)
        print(
            f"w {w:4.1f}  accuracy {row['accuracy']:.3f}  FD {row['domain_fd']:7.2f}  "
            f"P {row['precision']:.3f}  R {row['recall']:.3f}  {seconds:.1f} s",
            flush=True,
        )
    if args.save_images:
        np.savez_compressed(args.save_images, **sets)
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(rows, floor, RESULTS / "guidance_sweep.png")
    lines = [
        f"{args.per_class} samples per class ({num} in all), sampler {sampler.sampler} with "
        f"{sampler.steps} steps; domain features vs {num} test images.",
        "",
        "| w | class accuracy | confident | domain FD | precision | recall |",
        "|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {r['guidance']:g} | {r['accuracy']:.3f} | {r['confident']:.3f} | {r['domain_fd']:.2f} | "
            f"{r['precision']:.3f} | {r['recall']:.3f} |"
            for r in rows
        ),
        f"| real train images | {floor['accuracy']:.3f} | {floor['confident']:.3f} | "
        f"{floor['domain_fd']:.2f} | {floor['precision']:.3f} | {floor['recall']:.3f} |",
    ]
    write_results(
        "guidance_sweep",
        {"checkpoint": str(loaded.path), "per_class": args.per_class, "rows": rows, "floor": floor},
        lines,
    )


if __name__ == "__main__":
    main()
