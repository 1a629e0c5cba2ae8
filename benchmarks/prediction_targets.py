"""ε, x₀, v or the mean μ: the same network and budget trained on each prediction target.

Arms (runs/pitfalls/target-NAME, the fashion-mnist-demo U-Net, 600 steps of 32 on one thread):
eps, x0, v and mu with the simple MSE on their own target, and mu with the true bound's weighting
(train.loss_weighting = vlb, DDPM Table 2's "μ̃, L, fixed isotropic Σ" row):

    ddpm train --config fashion-mnist-demo --out runs/pitfalls/target-NAME --train.steps 600 \\
        --train.num_threads 1 --diffusion.prediction_type {eps,x0,v,mu} \\
        --train.loss_weighting {simple,vlb}

Each model is measured the same way: held-out errors on a common yardstick (the ε and x̂₀ its output
implies, on test images at uniformly drawn t), and samples (ancestral, the same steps for all) scored
by domain FD, FID and the class histogram. Loss curves come from each run's log.jsonl.
Writes results/prediction_targets.{json,md,png}.

    python benchmarks/prediction_targets.py [--num 500] [--real 1000] [--steps 50]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from common import RESULTS, write_results

from ddpm.data import DataConfig, load_fashion_mnist
from ddpm.eval.features import cached_features, inception_space
from ddpm.eval.frechet import frechet_distance, gaussian_stats
from ddpm.imaging import to_model_range, to_uint8
from ddpm.models.denoiser import model_denoiser
from ddpm.pipelines import generate, load_model
from ddpm.pipelines.evaluate import real_images
from ddpm.process import predict_eps, predict_x0, q_sample

ARMS = {
    "eps": "ε, simple MSE",
    "x0": "x₀, simple MSE",
    "v": "v, simple MSE",
    "mu": "μ, simple MSE",
    "mu-vlb": "μ, true-bound weighting",
}
RUNS = Path(__file__).resolve().parent.parent / "runs" / "pitfalls"


@torch.no_grad()
def held_out_errors(loaded, images: torch.Tensor, seed: int = 0, batch: int = 100) -> dict:
    """Mean ‖ε − ε̂‖² and ‖x₀ − x̂₀‖² per pixel on test images, t uniform, ε̂ and x̂₀ converted
    from the network's own output; also by thirds of t."""
    g = torch.Generator().manual_seed(seed)
    denoise = model_denoiser(loaded.model)
    T = loaded.schedule.num_timesteps
    eps_err, x0_err, ts = [], [], []
    for start in range(0, len(images), batch):
        x0 = to_model_range(images[start : start + batch]).double()
        t = torch.randint(0, T, (len(x0),), generator=g)
        eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
        xt = q_sample(x0, t, loaded.schedule, eps)
        out = denoise(xt.float(), t).double()
        eps_hat = predict_eps(out, xt, t, loaded.schedule, loaded.prediction_type)
        x0_hat = predict_x0(out, xt, t, loaded.schedule, loaded.prediction_type)
        eps_err.append((eps_hat - eps).pow(2).flatten(1).mean(1))
        x0_err.append((x0_hat.clamp(-1, 1) - x0).pow(2).flatten(1).mean(1))
        ts.append(t)
    eps_err, x0_err, ts = torch.cat(eps_err), torch.cat(x0_err), torch.cat(ts)
    thirds = {}
    for i, (lo, hi) in enumerate(((0, T // 3), (T // 3, 2 * T // 3), (2 * T // 3, T))):
        m = (ts >= lo) & (ts < hi)
        thirds[f"eps_mse_t{i}"] = float(eps_err[m].mean())
        thirds[f"x0_mse_t{i}"] = float(x0_err[m].mean())
    return {"eps_mse": float(eps_err.mean()), "x0_mse": float(x0_err.mean()), **thirds}


def loss_curve(run: Path) -> list[tuple[int, float]]:
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    return [(r["step"], r["loss"]) for r in rows]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num", type=int, default=500, help="samples per arm (default: 500)")
    p.add_argument(
        "--real", type=int, default=1000, help="real test (and floor train) images (default: 1000)"
    )
    p.add_argument("--steps", type=int, default=50, help="ancestral sampling steps (default: 50)")
    p.add_argument("--held-out", type=int, default=2000, help="test images for the held-out errors")
    p.add_argument("--arms", default=",".join(ARMS), help="comma-separated arms (default: all)")
    args = p.parse_args()
    from common import DomainProbe

    probe = DomainProbe(args.num)
    space = inception_space()
    data = DataConfig(dataset="fashion-mnist", image_size=32)
    key = f"fashion-mnist-32-{args.real}"  # the cache keys of `ddpm eval`: features are shared
    real_stats = gaussian_stats(
        cached_features(space, f"{key}-test", lambda: real_images(data, "test", args.real))
    )
    floor = cached_features(space, f"{key}-train", lambda: real_images(data, "train", args.real))
    fid_floor = frechet_distance(*gaussian_stats(floor), *real_stats)
    test = load_fashion_mnist(split="test").images[-args.held_out :]
    results = {}
    for name in args.arms.split(","):
        label = ARMS[name]
        run = RUNS / f"target-{name}"
        loaded = load_model(run, device="cpu")
        sampler = replace(loaded.config.sample, sampler="ancestral", steps=args.steps)
        images = generate(loaded, args.num, seed=0, sampler=sampler, batch_size=100, progress=False).images
        u8 = to_uint8(images)
        domain = probe(u8)
        fid = frechet_distance(*gaussian_stats(space(u8)), *real_stats)
        results[name] = {
            "label": label,
            "step": loaded.meta["state"]["step"],
            "fid": fid,
            **domain,
            **held_out_errors(loaded, test),
            "final_loss": loss_curve(run)[-1][1],
            "curve": loss_curve(run),
        }
        print(name, {k: v for k, v in results[name].items() if k != "curve"}, flush=True)
    lines = [
        f"Same U-Net (fashion-mnist-demo), 600 steps of 32 each; {args.num} samples by ancestral sampling "
        f"({args.steps} steps) against {args.real} test images (FID floor: {args.real} train images, "
        f"{fid_floor:.1f}); domain FD against {args.num} test images. Held-out errors: "
        f"{args.held_out} test images, t uniform, the ε̂ and x̂₀ implied by each network's output "
        "(t0/t1/t2 = thirds of the chain, t0 the least noisy).",
        "",
        "| target | FID | domain FD | class entropy | held-out ε-MSE | held-out x̂₀-MSE "
        "| ε-MSE t0 / t1 / t2 |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in results.values():
        lines.append(
            f"| {r['label']} | {r['fid']:.1f} | {r['domain_fd']:.0f} | "
            f"{r['class_entropy']:.3f} | {r['eps_mse']:.4f} | {r['x0_mse']:.4f} | "
            f"{r['eps_mse_t0']:.3f} / {r['eps_mse_t1']:.3f} / {r['eps_mse_t2']:.3f} |"
        )
    write_results(
        "prediction_targets",
        {"num": args.num, "steps": args.steps, "fid_floor": fid_floor, "arms": results},
        lines,
    )
    plot(results)


def plot(results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for r in results.values():
        steps, losses = zip(*r["curve"], strict=True)
        axes[0].plot(steps, np.array(losses) / losses[0], label=r["label"])
    axes[0].set(
        yscale="log",
        xlabel="step",
        ylabel="training loss / first logged loss",
        title="Loss curves (own targets)",
    )
    axes[0].legend(fontsize=8)
    names = [r["label"] for r in results.values()]
    axes[1].barh(names, [r["fid"] for r in results.values()], color="tab:purple")
    axes[1].set(xlabel="FID (lower is better)", title="Sample quality at the same budget")
    fig.tight_layout()
    fig.savefig(RESULTS / "prediction_targets.png", dpi=130)


if __name__ == "__main__":
    main()
