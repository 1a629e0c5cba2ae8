"""Cascaded generation against one model at full resolution, at equal training budget (Ho et al. 2022).

Arms, each trained for ``--budget-minutes`` of wall-clock in total on the same machine:

* ``single``: an unconditional 32×32 Fashion-MNIST model (``fashion-mnist-single32``);
* ``cascade``: a 16×16 base model (``fashion-mnist-base16``) for ``--base-share`` of the budget, then a
  16→32 super-resolution stage with Gaussian conditioning augmentation (``fashion-mnist-cascade-sr``)
  for the rest.

Both then draw ``--num`` samples with the configured sampler; the script reports domain FD and Inception
FID against held-out test images, and wall-clock seconds per sample (the cascade at several
augmentation levels s). Arms can run in separate processes and are merged with ``--report``::

    python benchmarks/cascade.py --arms single &
    python benchmarks/cascade.py --arms cascade
    python benchmarks/cascade.py --report
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch
from common import RESULTS, DomainProbe, write_results
from image_to_image import FIGURES, budget_steps, train_budgeted
from PIL import Image

from ddpm.eval import frechet_distance, gaussian_stats
from ddpm.eval.features import inception_space
from ddpm.imaging import make_image_grid, save_image, to_uint8
from ddpm.pipelines import load_model
from ddpm.pipelines.cascade import super_resolve
from ddpm.pipelines.generation import generate

FOLDER = RESULTS / "cascade"
SETTINGS = ((0.0, 25), (0.1, 25), (0.2, 25), (0.1, 10))  # (augmentation level s, SR sampler steps)


def train_stage(config_name: str, minutes: float, out: Path) -> dict:
    """Train a bundled configuration for ``minutes`` (steps sized from a measured step time)."""
    record = train_budgeted(config_name, out, minutes, budget_steps(config_name, minutes))
    return {"config": config_name, **record}


class Scores:
    """Domain FD and Inception FID of 32×32 Fashion-MNIST sets against ``num`` held-out test images."""

    def __init__(self, num: int):
        self.domain = DomainProbe(num)
        self.inception = inception_space(progress=False)
        self.reference = gaussian_stats(self.inception(to_uint8(self.domain.reference)))

    def __call__(self, images: torch.Tensor, fid: bool = True) -> dict:
        out = {"domain_fd": self.domain(images)["domain_fd"]}
        if fid:
            out["fid"] = frechet_distance(*gaussian_stats(self.inception(to_uint8(images))), *self.reference)
        return out


def run_single(args, runs: Path, scores: Scores) -> dict:
    training = (
        [] if args.reuse else [train_stage("fashion-mnist-single32", args.budget_minutes, runs / "single")]
    )
    model = load_model(runs / "single", device="cpu")
    start = time.perf_counter()
    images = generate(model, args.num, seed=args.seed, batch_size=args.batch_size, progress=False).images
    seconds = time.perf_counter() - start
    return {
        "training": training,
        "sampler": f"{model.config.sample.sampler}, {model.config.sample.steps} steps",
        "seconds_per_sample": seconds / args.num,
        **scores(images),
        "_images": images,
    }


def run_cascade(args, runs: Path, scores: Scores) -> dict:
    training = []
    if not args.reuse:
        base_minutes = args.budget_minutes * args.base_share
        training.append(train_stage("fashion-mnist-base16", base_minutes, runs / "base16"))
        training.append(
            train_stage("fashion-mnist-cascade-sr", args.budget_minutes - base_minutes, runs / "sr16-32")
        )
    base, sr = load_model(runs / "base16", device="cpu"), load_model(runs / "sr16-32", device="cpu")
    start = time.perf_counter()
    low = generate(base, args.num, seed=args.seed, batch_size=args.batch_size, progress=False).images
    base_seconds = time.perf_counter() - start
    levels, default = {}, 0.5 * sr.config.data.cond_augment
    for level, steps in SETTINGS:
        sampler = replace(sr.config.sample, steps=steps)
        start = time.perf_counter()
        high = super_resolve(
            sr, low, level=level, seed=args.seed, sampler=sampler, batch_size=args.batch_size, progress=False
        ).images
        sr_seconds = time.perf_counter() - start
        levels[f"s = {level:g}, SR {steps} steps"] = {
            "level": level,
            "sr_steps": steps,
            "seconds_per_sample": (base_seconds + sr_seconds) / args.num,
            **scores(high, fid=level == default),
            "_images": high,
        }
    return {
        "training": training,
        "sampler": f"{base.config.sample.sampler}, {base.config.sample.steps} steps per stage",
        "base_seconds_per_sample": base_seconds / args.num,
        "default_level": default,
        "levels": levels,
        "_low": low,
    }


def sr_steps(result: dict) -> int:
    """The SR stage's configured number of sampler steps (the first setting that uses it)."""
    return max(r["sr_steps"] for r in result["levels"].values())


def strip_images(result: dict) -> dict:
    """The result without its image tensors (kept aside for the figure)."""
    if isinstance(result, dict):
        return {k: strip_images(v) for k, v in result.items() if not k.startswith("_")}
    return result


def write_rows(arm: str, rows: list[torch.Tensor], n: int = 10) -> None:
    """The first ``n`` samples of each row, one row per tensor, as ``results/cascade/ARM.png``."""
    grid = make_image_grid(torch.cat([r[:n] for r in rows]), nrow=n)
    save_image(grid, FOLDER / f"{arm}.png")


def write_figure() -> Path:
    """docs/images/cascade.png: base 16×16 samples (shown ×2), the same after the SR stage, and the
    single 32×32 model's samples below."""
    parts = [Image.open(FOLDER / f"{arm}.png").convert("L") for arm in ("cascade", "single")]
    canvas = Image.new("L", (max(p.width for p in parts), sum(p.height for p in parts)))
    top = 0
    for part in parts:
        canvas.paste(part, (0, top))
        top += part.height
    path = FIGURES / "cascade.png"
    save_image(canvas, path, scale=3)
    return path


def report() -> None:
    single = json.loads((FOLDER / "single.json").read_text())
    cascade = json.loads((FOLDER / "cascade.json").read_text())
    lines = [
        "| arm | training (base + SR) | domain FD ↓ | FID ↓ | s / sample |",
        "|---|---|---:|---:|---:|",
        f"| single 32×32 | {describe(single['training'])} | {single['domain_fd']:.1f} | "
        f"{single['fid']:.1f} | {single['seconds_per_sample']:.3f} |",
    ]
    for level, r in cascade["levels"].items():
        fid = f"{r['fid']:.1f}" if "fid" in r else "–"
        lines.append(
            f"| cascade 16→32, {level} | {describe(cascade['training'])} | {r['domain_fd']:.1f} | "
            f"{fid} | {r['seconds_per_sample']:.3f} |"
        )
    lines += [
        "",
        f"Samplers: {single['sampler']} (single); {cascade['sampler']} (cascade). "
        f"{single['num']} samples against {single['num']} held-out test images.",
    ]
    write_results("cascade", {"single": single, "cascade": cascade}, lines)
    write_figure()


def describe(training: list[dict]) -> str:
    """Steps and minutes of each trained stage, joined by +."""
    return " + ".join(f"{t['steps']} steps / {t['seconds'] / 60:.1f} min" for t in training)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arms", default="single,cascade", help="single, cascade or both")
    p.add_argument("--budget-minutes", type=float, default=10.0, help="training wall-clock per arm")
    p.add_argument("--base-share", type=float, default=0.5, help="the cascade base's share of its budget")
    p.add_argument("--threads", type=int, default=1, help="CPU threads of this process")
    p.add_argument("--runs", default="runs/cascade", help="where the trained networks go")
    p.add_argument("--num", type=int, default=500, help="samples per arm")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reuse", action="store_true", help="evaluate networks already trained under --runs")
    p.add_argument("--report", action="store_true", help="only merge the arms' results into the table")
    args = p.parse_args()
    if args.report:
        report()
        return
    torch.set_num_threads(args.threads)
    runs = Path(args.runs)
    FOLDER.mkdir(parents=True, exist_ok=True)
    scores = Scores(args.num)
    for arm in args.arms.split(","):
        result = run_single(args, runs, scores) if arm == "single" else run_cascade(args, runs, scores)
        if arm == "cascade":
            key = f"s = {result['default_level']:g}, SR {sr_steps(result)} steps"
            default = result["levels"][key]["_images"]
            write_rows(arm, [torch.nn.functional.interpolate(result["_low"], scale_factor=2), default])
        else:
            write_rows(arm, [result["_images"]])
        result.update(num=args.num, budget_minutes=args.budget_minutes, threads=args.threads)
        (FOLDER / f"{arm}.json").write_text(json.dumps(strip_images(result), indent=2) + "\n")
        print(json.dumps(strip_images(result), indent=1))


if __name__ == "__main__":
    main()
