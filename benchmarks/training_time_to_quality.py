"""Time to quality in training: the same wall-clock budget on the same machine for our Fashion-MNIST
demo recipe and for diffusers' unconditional-training recipe, then the same sampler for both.

Arms (``--arms``, each trained for ``--budget-minutes`` of wall clock, one after the other):

- ``ours``: ``ddpm train --config fashion-mnist-demo`` with ``train.time_limit_minutes`` = budget.
- ``diffusers``: the defaults of diffusers' ``examples/unconditional_image_generation/
  train_unconditional.py`` — UNet2DModel with block_out_channels (128, 128, 256, 256, 512, 512),
  two layers per block, attention in the fifth down / second up block; DDPMScheduler (1000 linear
  β's, ε-prediction); AdamW lr 1e-4, β (0.95, 0.999), weight decay 1e-6, ε 1e-8; cosine schedule
  with 500 warm-up steps over 100 epochs; batch 16; gradient clipping at 1; no EMA; fp32 — re-run
  here as a plain loop (no accelerate) on the same 32×32 images in [−1, 1].
- ``diffusers-small``: the same recipe with a UNet2DModel the size of ours (a recipe-only control).

Every arm is then sampled with SDE-DPM-Solver++(2M), ``--steps`` steps, ``--num`` images from the
same seeds, and scored by domain FD (and Inception FID with ``--fid``) against ``--num`` test images.
On ``--device cuda`` each arm runs at its defaults there (ours: bf16 autocast and torch.compile, the
compile time inside the budget unless ``--compile off``; diffusers' example: fp32, its
``mixed_precision`` default "no").
Writes results/training_time_to_quality{,_DEVICE}.{json,md} (no suffix for the CPU).

    python benchmarks/training_time_to_quality.py [--budget-minutes 10] [--num 200] [--steps 20]
        [--device cpu|cuda] [--arms ours,diffusers-small --keep-other-arms]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import RESULTS, DomainProbe, write_results
from train_throughput import diffusers_twin

from ddpm.data import load_fashion_mnist
from ddpm.imaging import to_model_range, to_uint8
from ddpm.pipelines import load_experiment_config, load_model
from ddpm.samplers import SamplerConfig, sample
from ddpm.schedules import ScheduleConfig, make_schedule


def example_unet(image_size: int, channels: int):
    """The UNet2DModel that diffusers' unconditional-training example builds."""
    from diffusers import UNet2DModel

    return UNet2DModel(
        sample_size=image_size,
        in_channels=channels,
        out_channels=channels,
        layers_per_block=2,
        block_out_channels=(128, 128, 256, 256, 512, 512),
        down_block_types=("DownBlock2D",) * 4 + ("AttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "AttnUpBlock2D") + ("UpBlock2D",) * 4,
    )


def train_example_recipe(unet, images: torch.Tensor, budget_s: float, seed: int = 0, device="cpu") -> dict:
    """The example's training loop until ``budget_s`` seconds have passed; returns its statistics."""
    from diffusers import DDPMScheduler
    from diffusers.optimization import get_scheduler

    torch.manual_seed(seed)
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-4, betas=(0.95, 0.999), weight_decay=1e-6, eps=1e-8)
    batch = 16
    per_epoch = math.ceil(len(images) / batch)
    lr_schedule = get_scheduler("cosine", opt, num_warmup_steps=500, num_training_steps=100 * per_epoch)
    unet.train()
    step, start, losses = 0, time.perf_counter(), []
    while time.perf_counter() - start < budget_s:
        order = torch.randperm(len(images))
        for k in range(per_epoch):
            x0 = to_model_range(images[order[k * batch : (k + 1) * batch]]).to(device)
            noise = torch.randn_like(x0)
            t = torch.randint(0, 1000, (len(x0),), device=device)
            pred = unet(scheduler.add_noise(x0, noise, t), t).sample
            loss = torch.nn.functional.mse_loss(pred, noise)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
            opt.step()
            lr_schedule.step()
            opt.zero_grad()
            step += 1
            losses.append(loss.item())
            if time.perf_counter() - start >= budget_s:
                break
    unet.eval()
    tail = losses[-50:]
    return {"steps": step, "images": step * batch, "final_loss": sum(tail) / max(1, len(tail))}


def sample_images(
    denoise, num: int, steps: int, image_size: int, channels: int, device="cpu"
) -> torch.Tensor:
    schedule = make_schedule(ScheduleConfig(schedule="linear", num_timesteps=1000))
    config = SamplerConfig(sampler="sde-dpm++2m", steps=steps, spacing="auto")
    out = []
    for b, s in enumerate(range(0, num, 100)):
        g = torch.Generator().manual_seed(b)
        x_T = torch.randn((min(100, num - s), channels, image_size, image_size), generator=g).to(device)
        with torch.no_grad():
            out.append(sample(config, denoise, x_T, schedule, "eps", generator=g).cpu())
    return torch.cat(out)


def train_ours(budget_minutes: float, workdir: Path, device: str = "cpu", compile: str = "auto"):
    out = workdir / "ours"
    cmd = [sys.executable, "-m", "ddpm", "train", "--config", "fashion-mnist-demo", "--out", str(out)]
    cmd += ["--train.time_limit_minutes", str(budget_minutes), "--train.sample_every", "0", "--no-progress"]
    cmd += ["--train.device", device, "--train.compile", compile]
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    loaded = load_model(out, device=device)
    return loaded, {
        "steps": loaded.meta["state"]["step"],
        "images": loaded.meta["state"]["images_seen"],
        "seconds": time.perf_counter() - start,
    }


def earlier_rows(path: Path, run_now: set[str], args) -> list[dict]:
    """The rows of arms not run now from a previous results file with the same budget, N and
    sampler steps, each marked ``earlier_run``."""
    if not path.is_file():
        return []
    previous = json.loads(path.read_text())
    same = (previous.get("budget_minutes"), previous.get("num"), previous.get("steps"))
    if same != (args.budget_minutes, args.num, args.steps):
        raise SystemExit(f"{path} was measured with budget/num/steps {same}; rerun every arm or match them")
    return [{**r, "earlier_run": True} for r in previous["rows"] if r["arm"] not in run_now]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget-minutes", type=float, default=10.0)
    p.add_argument("--arms", default="ours,diffusers,diffusers-small")
    p.add_argument("--num", type=int, default=200)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--fid", action="store_true", help="also Inception FID (slow on a CPU)")
    p.add_argument(
        "--keep-other-arms",
        action="store_true",
        help="carry the rows of arms not run now from the previous results file, marked as earlier runs",
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument(
        "--compile", default="auto", help="our arm's train.compile (off for budgets shorter than a compile)"
    )
    args = p.parse_args()
    device = torch.device(args.device)

    images = load_fashion_mnist(split="train").images
    probe = DomainProbe(args.num)
    g = torch.Generator().manual_seed(7)
    floor = probe(images[torch.randperm(len(images), generator=g)[: args.num]])["domain_fd"]
    ours_config = load_experiment_config("fashion-mnist-demo").model
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for arm in args.arms.split(","):
            if arm == "ours":
                loaded, stats = train_ours(args.budget_minutes, Path(tmp), args.device, args.compile)
                model = loaded.model
                params = sum(q.numel() for q in model.parameters())

                def denoise(x, t, model=model):
                    return model(x, t)
            elif arm in ("diffusers", "diffusers-small"):
                unet = example_unet(32, 1) if arm == "diffusers" else diffusers_twin(ours_config)
                unet = unet.to(device)
                params = sum(q.numel() for q in unet.parameters())
                start = time.perf_counter()
                stats = train_example_recipe(unet, images, args.budget_minutes * 60, device=device)
                stats["seconds"] = time.perf_counter() - start

                def denoise(x, t, unet=unet):
                    return unet(x, t).sample
            else:
                raise SystemExit(f"unknown arm {arm!r}")
            start = time.perf_counter()
            fake = to_uint8(sample_images(denoise, args.num, args.steps, 32, 1, device))
            row = {
                "arm": arm,
                "parameters": params,
                **stats,
                "sampling_seconds": time.perf_counter() - start,
                "domain_fd": probe(fake)["domain_fd"],
            }
            if args.fid:
                from ddpm.eval import frechet_distance, gaussian_stats
                from ddpm.eval.inception import InceptionFeatures

                inception = InceptionFeatures()
                f_fake, f_real = inception(fake), inception(probe.reference)
                row["fid"] = frechet_distance(*gaussian_stats(f_fake), *gaussian_stats(f_real))
            row["date"] = time.strftime("%Y-%m-%d")
            rows.append(row)
            print(row, flush=True)

    name = "training_time_to_quality" + ("" if device.type == "cpu" else "_" + device.type)
    if args.keep_other_arms:
        rows += earlier_rows(RESULTS / f"{name}.json", {r["arm"] for r in rows}, args)
    by_arm = {r["arm"]: r for r in rows}
    ratio = None
    if "ours" in by_arm and "diffusers" in by_arm:
        ratio = by_arm["ours"]["domain_fd"] / by_arm["diffusers"]["domain_fd"]
    lines = [
        f"Budget {args.budget_minutes:g} min of wall clock per arm, "
        + (
            torch.cuda.get_device_name(device)
            if device.type == "cuda"
            else f"{torch.get_num_threads()} threads"
        )
        + "; "
        f"{args.num} samples per arm (SDE-DPM-Solver++(2M), {args.steps} steps) against {args.num} test "
        f"images; real-vs-real domain FD at this N: {floor:.2f}."
        + (f" Ours / diffusers domain FD: {ratio:.3f}." if ratio is not None else "")
        + (
            " Rows marked * are carried from an earlier run (another day, perhaps another machine"
            " of the same kind), not this one."
            if any(r.get("earlier_run") for r in rows)
            else ""
        ),
        "",
        "| arm | parameters | optimiser steps | images seen | domain FD |" + (" FID |" if args.fid else ""),
        "|---|---:|---:|---:|---:|" + ("---:|" if args.fid else ""),
        *(
            f"| {r['arm']}{' *' if r.get('earlier_run') else ''} | {r['parameters']:,} | {r['steps']} | "
            f"{r['images']:,} | "
            f"{r['domain_fd']:.2f} |" + (f" {r['fid']:.2f} |" if args.fid else "")
            for r in rows
        ),
    ]
    write_results(
        name,
        {
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "budget_minutes": args.budget_minutes,
            "num": args.num,
            "steps": args.steps,
            "floor": floor,
            "rows": rows,
            "ours_over_diffusers": ratio,
        },
        lines,
    )


if __name__ == "__main__":
    main()
