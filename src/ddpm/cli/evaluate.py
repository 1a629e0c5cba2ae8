"""``ddpm eval``: measure a model's samples and likelihood; write a JSON report, print a table."""

from __future__ import annotations

import argparse
import io
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ddpm.checkpoints import read_meta
from ddpm.cli.checks import check_memory, check_output_file
from ddpm.configuration import add_field_flags, field_flag_values, flag_name, replace_from_flags
from ddpm.errors import UserError
from ddpm.fileio import atomic_write, write_text_atomic
from ddpm.pipelines import load_model
from ddpm.pipelines.baselines import is_baseline, load_baseline
from ddpm.pipelines.evaluate import METRICS, EvalConfig, evaluate, reference_data
from ddpm.pipelines.locate import resolve_checkpoint
from ddpm.samplers import SamplerConfig


def add_parser(sub) -> None:
    lines = "\n".join(f"  {k:10s} {m.help}" for k, m in METRICS.items())
    p = sub.add_parser(
        "eval",
        help="measure sample quality (FID, KID, precision/recall, domain FD) and NLL",
        description=(
            "Evaluate a model. Each metric is reported next to its floor (the same metric between "
            "disjoint sets of real train and test images) and the protocol it used. Real-image "
            f"features are cached under $DDPM_CACHE (default ~/.cache/ddpm). A GAN, VAE or flow "
            "baseline is sampled in one network pass per image; its nll is the flow's exact "
            "likelihood or the VAE's bound (a GAN has none)."
            f"\n\nmetrics:\n{lines}"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="checkpoint/run folder or pretrained name")
    p.add_argument("--metrics", default="fd-domain,pr,classes", help="comma-separated (default: %(default)s)")
    p.add_argument("--num", type=int, default=1000, help="generated (and real) images (default: 1000)")
    p.add_argument("--nll-num", type=int, default=64, help="test images for the NLL bound (default: 64)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    p.add_argument("--batch-size", type=int, default=100, help="images per network call (default: 100)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument(
        "--autoencoder",
        help="latent models: where their autoencoder is now, if it moved (the same weights are required)",
    )
    p.add_argument(
        "--pr-space",
        default="auto",
        choices=("auto", "domain", "inception"),
        help="feature space of precision/recall (default: domain for Fashion-MNIST, else inception)",
    )
    p.add_argument(
        "--samples",
        metavar="NPZ",
        help="measure these images instead of sampling: a .npz whose array 'images' is N×C×H×W uint8 "
        "(as --save-samples writes); the first --num are used",
    )
    p.add_argument(
        "--data",
        metavar="NAME_OR_FOLDER",
        help="reference images: a data set name or a folder of images (default: the model's own data; "
        "needed for diffusers folders)",
    )
    p.add_argument("--save-samples", metavar="NPZ", help="also write the measured samples to this .npz")
    p.add_argument("--out", help="JSON report to write")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    add_field_flags(p, SamplerConfig, "sampler options (see 'ddpm samplers')", " (default: the model's)")
    p.set_defaults(handler=run)


def _rows(report: dict) -> list[tuple[str, str, str]]:
    m = report["metrics"]
    rows = []
    for key, label in (("fid", "FID"), ("fd-domain", "domain FD")):
        if key in m:
            rows.append((label, f"{m[key]['value']:.2f}", f"{m[key]['floor']:.2f}"))
    if "kid" in m:
        k = m["kid"]
        rows.append(
            (
                "KID ×10³",
                f"{k['value']:.2f} ± {k['std']:.2f}",
                f"{k['floor']:.2f} ± {k['floor_std']:.2f}",
            )
        )
    if "pr" in m:
        pr = m["pr"]
        rows.append((f"precision ({pr['space']})", f"{pr['precision']:.3f}", f"{pr['floor_precision']:.3f}"))
        rows.append((f"recall ({pr['space']})", f"{pr['recall']:.3f}", f"{pr['floor_recall']:.3f}"))
    if "classes" in m:
        c = m["classes"]
        rows.append(
            (
                "class entropy (1 = even)",
                f"{c['normalised_entropy']:.3f}",
                f"{c['floor']['normalised_entropy']:.3f}",
            )
        )
        rows.append(
            (
                "confident share (p ≥ 0.9)",
                f"{c['confident_share']:.3f}",
                f"{c['floor']['confident_share']:.3f}",
            )
        )
    if "nll" in m:
        n = m["nll"]
        kind = "exact" if n.get("kind", "").startswith("exact") else "bound"
        rows.append((f"NLL bits/dim ({kind})", f"{n['bits_per_dim']:.3f} ± {n['stderr']:.3f}", "–"))
    return rows


def run(args: argparse.Namespace) -> int:
    metrics = tuple(m.strip() for m in args.metrics.split(",") if m.strip())
    config = EvalConfig(
        metrics=metrics,
        num=args.num,
        seed=args.seed,
        batch_size=args.batch_size,
        nll_num=args.nll_num,
        device=args.device,
        progress=not args.no_progress,
        pr_space=args.pr_space,
    )
    if args.save_samples and Path(args.save_samples).exists():
        raise UserError(f"{args.save_samples} already exists; choose another --save-samples path")
    for flag, path in (("--out", args.out), ("--save-samples", args.save_samples)):
        if path:
            check_output_file(flag, path)
    # at least the 2048-d float32 features of the generated, real and floor sets
    check_memory(f"--num {args.num}", 3 * args.num * 2048 * 4, "lower --num")
    if is_baseline(read_meta(resolve_checkpoint(args.checkpoint))):
        given = [flag_name(k, SamplerConfig) for k in field_flag_values(args)]
        if args.autoencoder:
            given.append("--autoencoder")
        if given:
            raise UserError(f"{', '.join(given)} apply to diffusion models; {args.checkpoint} is a baseline")
        loaded = load_baseline(args.checkpoint, device=args.device)
    else:
        loaded = load_model(args.checkpoint, device=args.device, autoencoder=args.autoencoder)
        config = replace(config, sampler=replace_from_flags(loaded.config.sample, args))
    if args.data:
        config = replace(config, data=reference_data(loaded, args.data))
    elif loaded.meta.get("kind") == "diffusers":
        raise UserError("a diffusers folder names no data set: give --data NAME_OR_FOLDER to compare with")
    samples = read_samples(args.samples) if args.samples else None
    save = (lambda images: write_samples(args.save_samples, images)) if args.save_samples else None
    report = evaluate(loaded, config, samples, on_samples=save)
    rows = [("metric", "model", "floor (real vs real)"), *_rows(report)]
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    for i, r in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(r, width, strict=True)))
        if i == 0:
            print("  ".join("-" * w for w in width))
    if "classes" in report["metrics"]:
        hist = report["metrics"]["classes"]["histogram"]
        print("classes: " + ", ".join(f"{k} {v:.0%}" for k, v in hist.items()))
    print("seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in report["timings_seconds"].items()))
    for name, protocol in report.get("protocols", {}).items():
        print(f"protocol ({name}): {protocol}; {report['reference']}")
    if args.out:
        write_text_atomic(args.out, json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


def read_samples(path: str) -> torch.Tensor:
    """The uint8 image array ``images`` of a .npz file, with a one-line error for anything else."""
    try:
        with np.load(path) as data:
            images = data["images"]
    except FileNotFoundError:
        raise UserError(f"samples file {path} not found") from None
    except (KeyError, ValueError, OSError) as err:
        raise UserError(
            f"{path} is not a .npz with an 'images' array ({err}); write one with --save-samples"
        ) from None
    return torch.from_numpy(images)


def write_samples(path: str, images: torch.Tensor) -> None:
    """Save uint8 images as a .npz (array ``images``) atomically."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, images=images.cpu().numpy())
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(buffer.getvalue()))
    print(f"wrote {path}")
