"""Sample quality vs. sampler and step count for a Fashion-MNIST model, with diffusers as a peer.

For each sampler setting: N samples from fixed seeds, their domain Fréchet distance to N real
test images (features of the project's Fashion-MNIST classifier), the share of samples the
classifier calls with ≥ 90% confidence ("recognisable"), the class-histogram entropy, and
wall time. The floor is the same distance between N train and N test images. A peer row runs
diffusers' DDIMScheduler loop on the same network and noise.

    python benchmarks/sampler_quality.py [--checkpoint fashion-mnist] [--num 400]

Writes benchmarks/results/sampler_quality.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from ddpm.data import load_fashion_mnist
from ddpm.eval import frechet_distance, gaussian_stats, load_domain_classifier
from ddpm.models.denoiser import model_denoiser
from ddpm.pipelines import generate, load_model
from ddpm.samplers import SamplerConfig

SETTINGS = [
    ("ancestral", dict(sampler="ancestral", steps=50)),
    ("ancestral", dict(sampler="ancestral", steps=100)),
    ("ancestral", dict(sampler="ancestral", steps=250)),
    ("ancestral", dict(sampler="ancestral", steps=1000)),
    ("ddim η=0", dict(sampler="ddim", steps=25, eta=0.0)),
    ("ddim η=0", dict(sampler="ddim", steps=50, eta=0.0)),
    ("ddim η=0", dict(sampler="ddim", steps=100, eta=0.0)),
    ("ddim η=1", dict(sampler="ddim", steps=50, eta=1.0)),
]


def quality(classifier, images, ref_stats):
    feats, logits = classifier.features_and_logits(images)
    probs = logits.softmax(1)
    hist = torch.bincount(probs.argmax(1), minlength=10).double() / len(images)
    entropy = -(hist[hist > 0] * hist[hist > 0].log()).sum().item() / math.log(10)
    return {
        "domain_fd": frechet_distance(*gaussian_stats(feats.numpy()), *ref_stats),
        "recognisable": (probs.max(1).values >= 0.9).double().mean().item(),
        "class_entropy": entropy,
        "class_histogram": [round(h, 4) for h in hist.tolist()],
    }


def diffusers_ddim(loaded, num, steps, seed, batch_size):
    """Peer: diffusers' DDIMScheduler (η = 0, trailing spacing) on the same network and noise."""
    from diffusers import DDIMScheduler

    sched = DDIMScheduler(
        num_train_timesteps=loaded.schedule.num_timesteps, beta_schedule="linear",
        clip_sample=loaded.config.sample.clip_x0, timestep_spacing="trailing", set_alpha_to_one=True,
    )  # fmt: skip
    sched.set_timesteps(steps)
    denoise = model_denoiser(loaded.model)
    c = loaded.config.model
    out = []
    for b, start in enumerate(range(0, num, batch_size)):
        n = min(batch_size, num - start)
        g = torch.Generator().manual_seed(seed * 1_000_003 + b)
        x = torch.randn((n, c.in_channels, c.image_size, c.image_size), generator=g)
        for t in sched.timesteps:
            x = sched.step(denoise(x, torch.full((n,), int(t))), t, x).prev_sample
        out.append(x)
    return torch.cat(out)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", default="fashion-mnist")
    parser.add_argument("--num", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--max-steps", type=int, default=1000, help="skip settings with more steps")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "sampler_quality"))
    args = parser.parse_args()

    classifier = load_domain_classifier()
    test = load_fashion_mnist(split="test").images[: args.num]
    train = load_fashion_mnist(split="train").images[: args.num]
    ref_feats, _ = classifier.features_and_logits(test)
    ref_stats = gaussian_stats(ref_feats.numpy())
    loaded = load_model(args.checkpoint, device="cpu")
    rows = [{"sampler": "real train images (floor)", "steps": 0, **quality(classifier, train, ref_stats)}]
    print(f"floor: domain FD {rows[0]['domain_fd']:.2f}")

    def record(name, steps, run):
        start = time.perf_counter()
        images = run()
        seconds = time.perf_counter() - start
        row = {
            "sampler": name,
            "steps": steps,
            "seconds": round(seconds, 1),
            **quality(classifier, images, ref_stats),
        }
        rows.append(row)
        print(
            f"{name:28s} {steps:5d} steps  FD {row['domain_fd']:7.2f}  "
            f"recognisable {row['recognisable']:.1%}  {seconds:6.0f} s",
            flush=True,
        )

    for name, setting in SETTINGS:
        if setting["steps"] > args.max_steps:
            continue
        sampler = SamplerConfig(**{**vars(loaded.config.sample), **setting})
        record(
            name,
            setting["steps"],
            lambda s=sampler: (
                generate(
                    loaded, args.num, seed=0, sampler=s, batch_size=args.batch_size, progress=False
                ).images
            ),
        )
    record("diffusers DDIM η=0 (peer)", 50, lambda: diffusers_ddim(loaded, args.num, 50, 0, args.batch_size))

    result = {
        "checkpoint": str(loaded.path), "num_samples": args.num, "reference": "Fashion-MNIST test split",
        "feature_space": f"project domain classifier ({classifier.path.name}, test accuracy "
        f"{classifier.test_accuracy:.4f})", "rows": rows,
    }  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"Samples: {args.num} per row, seed 0; reference: {args.num} Fashion-MNIST test images; "
        f"features: {result['feature_space']}.",
        "",
        "| sampler | steps | domain FD ↓ | recognisable ↑ | class entropy ↑ | seconds |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['sampler']} | {r['steps'] or '–'} | {r['domain_fd']:.2f} | {r['recognisable']:.1%} | "
            f"{r['class_entropy']:.3f} | {r.get('seconds', '–')} |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
