"""Receptive field too small? Two copies of one garment, 48 px apart, and three U-Nets at about the
same number of parameters and the same training budget:

- shallow: two levels, no attention (the bundled fashion-mnist-pairs config);
- deep: four levels, no attention;
- shallow + attention: the shallow one with self-attention at its lowest level and in the middle.

    ddpm train --config fashion-mnist-pairs --out runs/pitfalls/rf-shallow --train.num_threads 1
    ddpm train --config fashion-mnist-pairs --out runs/pitfalls/rf-deep --train.num_threads 1 \\
        --model.base_channels 32 --model.channel_mult 1,2,2,2
    ddpm train --config fashion-mnist-pairs --out runs/pitfalls/rf-shallow-attn --train.num_threads 1 \\
        --model.attention_resolutions 8 --model.mid_attention true

Each network's theoretical receptive field is measured (ddpm.models.receptive_field); its samples are
judged by ddpm.eval.consistency: both halves get the same class from the Fashion-MNIST classifier
and lie closer than half the median distance of two random real garments. Writes
results/receptive_field.{json,md,png}.

    python benchmarks/receptive_field.py [--num 500] [--steps 100]
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from common import RESULTS, write_results

from ddpm.data import load_fashion_mnist
from ddpm.data.pairs import garment_pairs, pair_halves
from ddpm.eval import load_domain_classifier
from ddpm.eval.consistency import judge_pairs, random_pair_distance
from ddpm.imaging import make_image_grid, save_image, to_model_range
from ddpm.models.receptive_field import unet_receptive_field
from ddpm.pipelines import generate, load_model

ARMS = {
    "shallow": "shallow (2 levels)",
    "deep": "deep (4 levels)",
    "shallow-attn": "shallow + self-attention",
}
RUNS = Path(__file__).resolve().parent.parent / "runs" / "pitfalls"


def classifier_fn():
    """Class ids of 16×16 garments in [−1, 1]: resized to 28×28 and padded to 32×32 like the
    classifier's training images."""
    classifier = load_domain_classifier()

    def classify(x: torch.Tensor) -> torch.Tensor:
        big = F.interpolate((x.float() + 1) / 2, size=(28, 28), mode="bilinear", antialias=True)
        big = F.pad(big * 2 - 1, (2, 2, 2, 2), value=-1.0)
        return classifier.features_and_logits(big)[1].argmax(1)

    return classify


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num", type=int, default=500)
    p.add_argument("--steps", type=int, default=100, help="ancestral sampling steps (default: 100)")
    args = p.parse_args()
    classify = classifier_fn()
    test = load_fashion_mnist(split="test", image_size=16)
    garments = to_model_range(test.images)
    reference = random_pair_distance(garments)
    accuracy = float((classify(garments[:2000]) == test.labels[:2000]).float().mean())
    g = torch.Generator().manual_seed(0)
    shuffled = garments[torch.randperm(len(garments), generator=g)]
    chance = judge_pairs(garments[: args.num], shuffled[: args.num], classify, reference).summary()
    real_left, real_right = pair_halves(to_model_range(garment_pairs(test).images[: args.num]))
    real = judge_pairs(real_left, real_right, classify, reference).summary()
    results = {
        "reference_distance": reference,
        "classifier_accuracy_16px": accuracy,
        "chance": chance,
        "real": real,
    }
    grids = []
    for name, label in ARMS.items():
        loaded = load_model(RUNS / f"rf-{name}", device="cpu")
        sampler = replace(loaded.config.sample, sampler="ancestral", steps=args.steps)
        strips = generate(loaded, args.num, seed=0, sampler=sampler, batch_size=100, progress=False).images
        left, right = pair_halves(strips.clamp(-1, 1))
        report = judge_pairs(left, right, classify, reference)
        results[name] = {
            "label": label,
            "parameters": sum(p.numel() for p in loaded.model.parameters()),
            "receptive_field_px": unet_receptive_field(loaded.model),
            "step": loaded.meta["state"]["step"],
            "left_class_entropy": class_entropy(report.left_class),
            **report.summary(),
        }
        print(name, results[name], flush=True)
        grids.append(strips[:8])
    save_image(make_image_grid(torch.cat(grids), nrow=2), RESULTS / "receptive_field.png", scale=3)
    lines = [
        f"Strips of two copies of one 16×16 garment, centres 48 px apart. {args.num} samples per network "
        f"(ancestral, {args.steps} steps). Consistent = same class for both halves and RMS distance below "
        f"half that of two random real garments ({reference:.3f}). The judge's classifier gets "
        f"{accuracy:.1%} of real 16 px test garments right.",
        "",
        "| network | parameters | receptive field (px) | consistent | same class | median distance |",
        "|---|---:|---:|---:|---:|---:|",
        f"| real pairs | – | – | {real['consistency_rate']:.1%} | {real['same_class_rate']:.1%} "
        f"| {real['median_distance']:.3f} |",
        f"| random pairs (chance) | – | – | {chance['consistency_rate']:.1%} "
        f"| {chance['same_class_rate']:.1%} | {chance['median_distance']:.3f} |",
    ]
    for name in ARMS:
        r = results[name]
        field = "whole image" if r["receptive_field_px"] is None else str(r["receptive_field_px"])
        lines.append(
            f"| {r['label']} | {r['parameters']:,} | {field} | {r['consistency_rate']:.1%} | "
            f"{r['same_class_rate']:.1%} | {r['median_distance']:.3f} |"
        )
    lines += [
        "",
        "Samples (receptive_field.png): two columns of strips per network, in the order of the table.",
    ]
    write_results("receptive_field", results, lines)


def class_entropy(classes: torch.Tensor) -> float:
    """Normalised entropy of a class histogram (1 = all ten classes equally often)."""
    hist = torch.bincount(classes, minlength=10).double() / len(classes)
    nz = hist[hist > 0]
    return float(-(nz * nz.log()).sum() / torch.log(torch.tensor(10.0)))


if __name__ == "__main__":
    main()
