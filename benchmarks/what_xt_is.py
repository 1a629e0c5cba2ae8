"""What x_T is and is not: is the starting noise a code for the image?

From each of a few fixed x_T, draw many samples with ancestral sampling (DDPM) and with DDIM at
η = 0, 0.5 and 1, and compare the spread of the samples from one x_T (mean pairwise RMS distance)
with the spread of samples from different x_T. Then DDIM inversion: encode test images to x_T with
η = 0 and decode them back. The seed's "x_T is not an encoding of x_0" should hold for stochastic
sampling and fail for deterministic sampling. Writes results/what_xt_is.{json,md,png}.

    python benchmarks/what_xt_is.py [--checkpoint fashion-mnist] [--codes 4] [--draws 16]
"""

from __future__ import annotations

import argparse
import math
from dataclasses import replace

import torch
from common import RESULTS, write_results

from ddpm.data import load_fashion_mnist
from ddpm.imaging import make_image_grid, save_image, to_model_range
from ddpm.models.denoiser import model_denoiser
from ddpm.pipelines import load_model
from ddpm.samplers import ddim_invert, ddim_sample, sample, spaced_timesteps


def mean_pairwise_rms(x: torch.Tensor) -> float:
    """Mean RMS distance over all pairs of images in x (N, C, H, W)."""
    flat = x.flatten(1).double()
    d = torch.cdist(flat, flat) / math.sqrt(flat.shape[1])
    n = len(x)
    return float(d.sum() / (n * (n - 1)))


def draw(loaded, config, x_T: torch.Tensor, seeds: list[int]) -> torch.Tensor:
    """One sample per seed, all from the same x_T (1, C, H, W): the seed drives only the sampler's
    own noise."""
    denoise = model_denoiser(loaded.model)
    out = []
    for seed in seeds:
        g = torch.Generator().manual_seed(seed)
        out.append(sample(config, denoise, x_T.clone(), loaded.schedule, loaded.prediction_type, generator=g))
    return torch.cat(out).clamp(-1, 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="fashion-mnist")
    p.add_argument("--codes", type=int, default=4, help="fixed x_T to draw from (default: 4)")
    p.add_argument("--draws", type=int, default=16, help="samples per x_T (default: 16)")
    p.add_argument("--steps", type=int, default=50, help="sampling steps of every sampler (default: 50)")
    p.add_argument("--invert", type=int, default=64, help="test images for DDIM inversion (default: 64)")
    args = p.parse_args()
    loaded = load_model(args.checkpoint, device="cpu")
    c = loaded.config.model
    base = replace(loaded.config.sample, steps=args.steps, clip_x0=True)
    samplers = {
        "ancestral (DDPM)": replace(base, sampler="ancestral"),
        "DDIM η = 1": replace(base, sampler="ddim", eta=1.0),
        "DDIM η = 0.5": replace(base, sampler="ddim", eta=0.5),
        "DDIM η = 0": replace(base, sampler="ddim", eta=0.0),
    }
    g = torch.Generator().manual_seed(2024)
    codes = torch.randn(args.codes + args.draws, c.in_channels, c.image_size, c.image_size, generator=g)
    rows, figure_rows = [], []
    for name, config in samplers.items():
        same = [draw(loaded, config, codes[k : k + 1], list(range(args.draws))) for k in range(args.codes)]
        within = sum(mean_pairwise_rms(s) for s in same) / args.codes
        n = len(codes)
        shared = torch.cat([draw(loaded, config, codes[k : k + 1], [0]) for k in range(n)])
        fresh = torch.cat([draw(loaded, config, codes[k : k + 1], [1000 + k]) for k in range(n)])
        across = mean_pairwise_rms(fresh)
        rows.append(
            {
                "sampler": name,
                "within_one_xT": within,
                "across_xT_shared_sampler_noise": mean_pairwise_rms(shared),
                "across_xT": across,
                "ratio": within / across,
            }
        )
        print(rows[-1], flush=True)
        figure_rows.append(same[0][:8] if name != "DDIM η = 0" else same[0][:1])

    denoise = model_denoiser(loaded.model)
    x0 = to_model_range(load_fashion_mnist(split="test").images[: args.invert])
    ts = spaced_timesteps(loaded.schedule.num_timesteps, args.steps, "linspace")
    x_T = ddim_invert(denoise, x0, loaded.schedule, ts, prediction_type=loaded.prediction_type)
    back = ddim_sample(
        denoise, x_T, loaded.schedule, ts, eta=0.0, prediction_type=loaded.prediction_type, clip_x0=False
    )
    stochastic = ddim_sample(
        denoise,
        x_T,
        loaded.schedule,
        ts,
        eta=1.0,
        prediction_type=loaded.prediction_type,
        generator=torch.Generator().manual_seed(1),
    )
    rms = lambda a, b: float((a - b).pow(2).flatten(1).mean(1).sqrt().mean())  # noqa: E731
    inversion = {
        "steps": args.steps,
        "num": args.invert,
        "rms_error_ddim_eta0": rms(back.clamp(-1, 1), x0),
        "rms_error_ddim_eta1_from_the_inverted_xT": rms(stochastic.clamp(-1, 1), x0),
        "rms_between_random_test_images": mean_pairwise_rms(x0),
        "psnr_db_eta0": 10 * math.log10(4 / float((back.clamp(-1, 1) - x0).pow(2).mean())),
    }
    print(inversion)

    # figure: one x_T; eight ancestral samples; eight DDIM η = 1, eight η = 0.5; the one DDIM η = 0 sample
    labels = ["x_T"] + [n for n in samplers]
    grid_rows = [codes[:1].clamp(-1, 1).expand(8, -1, -1, -1).clone()]
    grid_rows[0][1:] = -1
    for r in figure_rows:
        pad = torch.full((8 - len(r), *r.shape[1:]), -1.0)
        grid_rows.append(torch.cat([r, pad]))
    save_image(make_image_grid(torch.cat(grid_rows), nrow=8), RESULTS / "what_xt_is.png", scale=3)

    lines = [
        f"From {args.codes} fixed x_T, {args.draws} samples each ({args.steps} steps, "
        f"model {args.checkpoint}); "
        f"spread = mean pairwise RMS distance in [−1, 1] pixels. 'Across' = one sample from each of "
        f"{len(codes)} different x_T, with the sampler's own noise the same for all (seed 0) or "
        "different for each.",
        "",
        "| sampler | within one x_T | across x_T, same sampler noise | across x_T | within / across |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {r['sampler']} | {r['within_one_xT']:.3f} | {r['across_xT_shared_sampler_noise']:.3f} "
            f"| {r['across_xT']:.3f} | {r['ratio']:.2f} |"
            for r in rows
        ),
        "",
        f"DDIM inversion ({args.steps} steps, {args.invert} test images): RMS reconstruction error "
        f"{inversion['rms_error_ddim_eta0']:.4f} (PSNR {inversion['psnr_db_eta0']:.1f} dB) against "
        f"{inversion['rms_between_random_test_images']:.3f} between two random test images; decoding the "
        f"same inverted x_T with η = 1 instead: {inversion['rms_error_ddim_eta1_from_the_inverted_xT']:.3f}.",
        "",
        "Figure rows (what_xt_is.png): " + "; ".join(labels) + " (η = 0 has one possible result).",
    ]
    write_results("what_xt_is", {"checkpoint": args.checkpoint, "rows": rows, "inversion": inversion}, lines)


if __name__ == "__main__":
    main()
