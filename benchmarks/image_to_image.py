"""Image-to-image diffusion against its baselines, task by task (SR3, Palette).

For each task one bundled configuration trains two networks of the same architecture for the same
wall-clock budget: the conditional diffusion model (the configuration as it is) and the MSE-regression
baseline (``train.objective = "regression"``). Both, and the task's non-learned baseline (bicubic
upsampling; nearest known pixel for holes; the degraded input itself for colourisation and JPEG), then
restore the same held-out test images:

* PSNR and SSIM against the ground truth (where regression, the conditional mean, should win);
* a Fréchet distance between the restored set and the ground-truth set (domain FD for Fashion-MNIST,
  Inception FID for faces), the mean Laplacian variance relative to the ground truth's (sharpness) and
  the per-pixel spread of several restorations of the same input (diversity), where diffusion should win.

Tasks can run in separate processes (one thread each) and are merged with ``--report``::

    python benchmarks/image_to_image.py --tasks fashion-mnist-sr4,fashion-mnist-jpeg,faces-sr4 &
    python benchmarks/image_to_image.py --tasks fashion-mnist-inpaint,fashion-mnist-uncrop,faces-colorize
    python benchmarks/image_to_image.py --report

The measured runs: the six tasks at 5 minutes per network with ε-prediction (``--prediction-type
eps``), the same step counts again with v-prediction (``--steps N --objectives diffusion
--prediction-type v --tag v``, reusing the regression networks), and ``fashion-mnist-sr4`` at 1,200
steps with both (``--tag 1200-eps`` / ``1200-v``).

Writes ``results/image_to_image/TASK.json`` per task, ``results/image_to_image.{json,md}`` and a figure
per task (input, baseline, regression, two diffusion samples, ground truth) under ``docs/images``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from common import RESULTS, write_results
from PIL import Image, ImageDraw

from ddpm.data import load_dataset
from ddpm.data.degradations import degrade
from ddpm.eval import frechet_distance, gaussian_stats
from ddpm.eval.image_quality import diversity, psnr, sharpness, ssim
from ddpm.imaging import make_image_grid, to_model_range, to_uint8
from ddpm.pipelines import load_model
from ddpm.pipelines.experiment import load_experiment_config, run_training
from ddpm.pipelines.restoration import classical_baseline, restore
from ddpm.samplers import SamplerConfig

TASKS = (
    "fashion-mnist-sr4",
    "fashion-mnist-inpaint",
    "fashion-mnist-uncrop",
    "fashion-mnist-jpeg",
    "faces-colorize",
    "faces-sr4",
)
BASELINE_NAME = {"sr2": "bicubic", "sr4": "bicubic", "colorize": "grey input", "jpeg": "JPEG input"}
FOLDER = RESULTS / "image_to_image"
FIGURES = Path(__file__).parent.parent / "docs" / "images"


def step_seconds(config, repeats: int = 6) -> float:
    """Seconds per optimiser step of the configured network at its batch size, fp32, on random data."""
    from ddpm.models.unet import UNet

    model = UNet(config.model)
    opt = torch.optim.AdamW(model.parameters(), 1e-4)
    c, s, b = config.model.in_channels, config.model.image_size, config.train.batch_size
    x = torch.randn(b, c, s, s)
    inputs = {}
    if config.model.cond_channels:
        inputs["cond_image"] = torch.randn(b, config.model.cond_channels, s, s)
    if config.model.aug_level:
        inputs["aug_level"] = torch.rand(b)
    t = torch.randint(0, 1000, (b,))
    times = []
    for i in range(repeats + 2):
        start = time.perf_counter()
        out = model(x, t, **inputs)
        loss = (out - x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - start)
    return float(np.median(times))


def budget_steps(config_name: str, minutes: float) -> int:
    """Optimiser steps that fit ``minutes`` at the measured step time of a bundled configuration."""
    per_step = step_seconds(load_experiment_config(config_name))
    print(f"{config_name}: {per_step:.3f} s per step at {torch.get_num_threads()} thread(s)")
    return max(50, int(minutes * 60 / per_step))


def train_budgeted(config_name: str, out: Path, minutes: float, steps: int, overrides: dict | None = None):
    """Train a bundled configuration for ``steps`` (cosine schedule over them), with ``minutes`` of
    wall clock as a backstop, no preview grids and one final checkpoint; returns what ran."""
    train = {"steps": steps, "time_limit_minutes": minutes, "sample_every": 0, "checkpoint_every": steps}
    overrides = {**(overrides or {}), "train": {**(overrides or {}).get("train", {}), **train}}
    result = run_training(load_experiment_config(config_name, overrides), out, progress=False)
    print(f"{out}: {result.step} steps in {result.elapsed_seconds:.0f} s, loss {result.loss:.4f}")
    return {
        "budget_minutes": minutes,
        "steps": result.step,
        "planned_steps": steps,
        "seconds": result.elapsed_seconds,
        "loss": result.loss,
    }


def train_arm(
    task: str, objective: str, budget_minutes: float, runs: Path, steps: int, prediction_type: str = ""
) -> dict:
    """Train one arm of a task; the record of what ran is kept beside the run as ``budget.json``."""
    out = runs / task / objective
    overrides = {"train": {"objective": objective}}
    if prediction_type and objective == "diffusion":
        overrides["diffusion"] = {"prediction_type": prediction_type}
    record = train_budgeted(task, out, budget_minutes, steps, overrides)
    (out / "budget.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def test_pairs(config, num: int):
    """``num`` held-out images x (fixed random order) and their conditions (y, mask)."""
    test = load_dataset(replace(config.data, split="test")).images
    g = torch.Generator().manual_seed(1234)
    order = torch.randperm(len(test), generator=g)
    x = to_model_range(test[order[:num]])
    other = to_model_range(test[order[num : 2 * num]])
    y, mask = degrade(config.data.task, x, torch.Generator().manual_seed(99))
    return x, other, y, mask


def feature_space(dataset: str):
    """(name, images → features): the domain classifier for Fashion-MNIST, Inception otherwise."""
    if dataset == "fashion-mnist":
        from ddpm.eval.features import domain_space

        space, _ = domain_space(progress=False)
        return "domain FD", space
    from ddpm.eval.features import inception_space

    return "FID", inception_space(progress=False)


def frechet(space, images: torch.Tensor, reference_stats) -> float:
    feats = space(to_uint8(images))
    return frechet_distance(*gaussian_stats(feats), *reference_stats)


def evaluate_task(
    task: str, runs: Path, num: int, draws: int, diversity_num: int, seed: int, tag: str = ""
) -> dict:
    diffusion = load_model(runs / task / "diffusion", device="cpu")
    regression = load_model(runs / task / "regression", device="cpu")
    config = diffusion.config
    x, other, y, mask = test_pairs(config, num)
    fd_name, space = feature_space(config.data.dataset)
    ref_stats = gaussian_stats(space(to_uint8(x)))

    outputs, seconds, spreads = {}, {}, {}
    start = time.perf_counter()
    outputs["baseline"] = classical_baseline(y, mask)[None]
    seconds["baseline"] = time.perf_counter() - start
    start = time.perf_counter()
    outputs["regression"] = restore(regression, y, mask, samples=1)
    seconds["regression"] = time.perf_counter() - start
    k = min(diversity_num, num)
    samplers = {
        "diffusion": config.sample,
        "diffusion (ODE)": SamplerConfig(sampler="dpm++2m", steps=config.sample.steps),
    }
    for name, sampler in samplers.items():
        start = time.perf_counter()
        outputs[name] = restore(diffusion, y, mask, samples=1, seed=seed, sampler=sampler)
        seconds[name] = time.perf_counter() - start
        sub_mask = None if mask is None else mask[:k]
        spreads[name] = restore(diffusion, y[:k], sub_mask, samples=draws, seed=seed + 1000, sampler=sampler)

    truth_sharpness = float(sharpness(x).mean())
    methods = {}
    for name, out in outputs.items():
        first = out[0]
        div = float(diversity(spreads[name]).mean()) if name in spreads else 0.0
        methods[name] = {
            "psnr": float(psnr(first, x).mean()),
            "ssim": float(ssim(first, x).mean()),
            "fd": frechet(space, first, ref_stats),
            "sharpness_ratio": float(sharpness(first).mean()) / truth_sharpness,
            "diversity": div,
            "seconds_per_image": seconds[name] / num,
        }
    floor = frechet(space, other, ref_stats)
    n = 8
    second = restore(diffusion, y[:n], None if mask is None else mask[:n], samples=1, seed=seed + 2000)
    figure_path = write_figure(f"{task}{tag}", config.data.task, x, y, mask, outputs, second[0], n)
    return {
        "task": task,
        "degradation": config.data.task,
        "dataset": config.data.dataset,
        "baseline_name": "nearest known pixel" if mask is not None else BASELINE_NAME[config.data.task],
        "fd_name": fd_name,
        "fd_floor_real_vs_real": floor,
        "num": num,
        "draws": draws,
        "diversity_num": k,
        "sampler": f"{config.sample.sampler}, {config.sample.steps} steps (ODE: dpm++2m, same steps)",
        "prediction_type": config.diffusion.prediction_type,
        "methods": methods,
        "figure": str(figure_path.relative_to(FIGURES.parent.parent)),
    }


def shown_input(task: str, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """What a person would call the input: the low-resolution image (pixelated), holes in mid-grey."""
    if task in ("sr2", "sr4"):
        f = int(task[-1])
        return torch.nn.functional.interpolate(torch.nn.functional.avg_pool2d(x, f), scale_factor=f)
    if mask is not None:
        return y * mask
    return y


def write_figure(task, degradation, x, y, mask, outputs, second, n: int = 8, scale: int = 3) -> Path:
    """Rows: input, baseline, regression, two diffusion samples, ground truth; one column per image."""
    rows = [
        ("input", shown_input(degradation, x[:n], y[:n], None if mask is None else mask[:n])),
        ("baseline", outputs["baseline"][0, :n]),
        ("regression", outputs["regression"][0, :n]),
        ("diffusion #1", outputs["diffusion"][0, :n]),
        ("diffusion #2", second),
        ("ground truth", x[:n]),
    ]
    grid = make_image_grid(torch.cat([r for _, r in rows]), nrow=n, padding=2)
    grid = grid.resize((grid.width * scale, grid.height * scale), Image.NEAREST)
    label_width = 100
    canvas = Image.new("RGB", (grid.width + label_width, grid.height), "white")
    canvas.paste(grid.convert("RGB"), (label_width, 0))
    draw = ImageDraw.Draw(canvas)
    cell = grid.height / len(rows)
    for i, (name, _) in enumerate(rows):
        draw.text((6, int(i * cell + cell / 2 - 5)), name, fill="black")
    FIGURES.mkdir(parents=True, exist_ok=True)
    path = FIGURES / f"i2i-{task}.png"
    canvas.save(path)
    return path


def report() -> None:
    results = [json.loads(p.read_text()) for p in sorted(FOLDER.glob("*.json"))]
    order = {t: i for i, t in enumerate(TASKS)}
    results.sort(key=lambda r: (order.get(r["task"], 99), r.get("tag", "")))
    lines = [
        "| task | method | PSNR ↑ | SSIM ↑ | FD ↓ | sharpness (÷ truth) | diversity | s / image |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    verdicts = [
        "",
        "| task | best PSNR | best FD | diffusion FD ÷ regression FD | diffusion PSNR − regression |",
        "|---|---|---|---:|---:|",
    ]
    for r in results:
        target = f", {r.get('prediction_type', 'eps')}-prediction"
        steps = r["training"].get("diffusion", {}).get("steps", "?")
        task = f"{r['task']} ({steps} steps{target})"
        for name, m in r["methods"].items():
            label = r["baseline_name"] if name == "baseline" else name
            lines.append(
                f"| {task} | {label} | {m['psnr']:.2f} | {m['ssim']:.3f} | {m['fd']:.1f} | "
                f"{m['sharpness_ratio']:.2f} | {m['diversity']:.3f} | {m['seconds_per_image']:.4f} |"
            )
        floor = r["fd_floor_real_vs_real"]
        lines.append(f"| {task} | real vs real ({r['fd_name']} floor) | | | {floor:.1f} | | | |")
        m = r["methods"]
        best_psnr = max(m, key=lambda k: m[k]["psnr"])
        best_fd = min(m, key=lambda k: m[k]["fd"])
        verdicts.append(
            f"| {task} | {best_psnr} | {best_fd} | {m['diffusion']['fd'] / m['regression']['fd']:.2f} | "
            f"{m['diffusion']['psnr'] - m['regression']['psnr']:+.2f} dB |"
        )
    head = results[0] if results else {}
    notes = [
        f"N = {head.get('num')} held-out images per task; diffusion sampler {head.get('sampler')}; "
        f"diversity from {head.get('draws')} draws of {head.get('diversity_num')} inputs. "
        "FD is domain FD (Fashion-MNIST classifier) or Inception FID (faces), restored set vs "
        "ground-truth set.",
    ]
    write_results("image_to_image", {"tasks": results}, [*lines, *verdicts, "", *notes])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", default=",".join(TASKS), help="comma-separated bundled task configurations")
    p.add_argument("--budget-minutes", type=float, default=5.0, help="training wall-clock per network")
    p.add_argument("--threads", type=int, default=1, help="CPU threads of this process")
    p.add_argument("--runs", default="runs/image-to-image", help="where the trained networks go")
    p.add_argument("--num", type=int, default=256, help="held-out images per task")
    p.add_argument("--draws", type=int, default=3, help="diffusion samples per input for diversity")
    p.add_argument("--diversity-num", type=int, default=64, help="inputs for the diversity measure")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reuse", action="store_true", help="evaluate networks already trained under --runs")
    p.add_argument("--objectives", default="diffusion,regression", help="which networks to train")
    p.add_argument("--train-only", action="store_true", help="train, do not evaluate")
    p.add_argument("--steps", type=int, default=0, help="train this many steps (default: fit the budget)")
    p.add_argument("--prediction-type", default="", help="override the diffusion arm's eps/x0/v target")
    p.add_argument("--tag", default="", help="suffix of the result and figure names (another budget)")
    p.add_argument("--report", action="store_true", help="only merge the per-task results into the table")
    args = p.parse_args()
    if args.report:
        report()
        return
    torch.set_num_threads(args.threads)
    runs = Path(args.runs)
    FOLDER.mkdir(parents=True, exist_ok=True)
    for task in args.tasks.split(","):
        if not args.reuse:
            steps = args.steps or budget_steps(task, args.budget_minutes)
            for objective in args.objectives.split(","):
                train_arm(task, objective, args.budget_minutes, runs, steps, args.prediction_type)
        if args.train_only:
            continue
        tag = f"-{args.tag}" if args.tag else ""
        result = evaluate_task(task, runs, args.num, args.draws, args.diversity_num, args.seed, tag)
        training = {
            objective: json.loads((runs / task / objective / "budget.json").read_text())
            for objective in ("diffusion", "regression")
            if (runs / task / objective / "budget.json").is_file()
        }
        result["training"] = training
        result["budget_minutes"] = max((t["budget_minutes"] for t in training.values()), default=None)
        result["threads"] = args.threads
        result["tag"] = args.tag
        (FOLDER / f"{task}{tag}.json").write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result["methods"], indent=1))


if __name__ == "__main__":
    main()
