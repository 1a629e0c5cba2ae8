"""Latent diffusion against pixel diffusion on the 64×64 faces at equal training time (the seed's
"massive speedup", Rombach et al. 2022).

Arms, each the same U-Net widths (base 32, one ResNet block per level, attention at the second
lowest resolution and in the middle), trained one CPU thread each with ``train.time_limit_minutes``:

- ``pixel``: ``faces64-pixel`` on 3×64×64 images;
- ``latent-f4``: ``faces64-latent`` on the 3×16×16 latents of an f = 4 autoencoder;
- ``latent-f8``: ``faces64-latent-f8`` on the 4×8×8 latents of an f = 8 autoencoder.

Every checkpoint is kept; for each budget (training minutes, the loop's own clock of optimiser
steps) the last checkpoint within it is measured: FID of ``--num`` samples (SDE-DPM-Solver++(2M),
``--steps`` steps) against as many held-out faces, beside the real-vs-real floor; training images
per second (log.jsonl); sampling seconds per image at the model's default sampler (batch 16); and
for each autoencoder its reconstruction FID (the floor's training images, reconstructed from the
posterior mean, against the test images — directly comparable with the floor and the models' FIDs)
and PSNR on held-out faces.

    python benchmarks/latent_speedup.py train pixel --out runs/pixel --minutes 40
    python benchmarks/latent_speedup.py train latent-f4 --out runs/f4 --minutes 40 --autoencoder runs/ae4
    python benchmarks/latent_speedup.py measure pixel --run runs/pixel --budgets 10,20,40
    python benchmarks/latent_speedup.py measure latent-f4 --run runs/f4 --budgets 10,20,40
    python benchmarks/latent_speedup.py autoencoder f4 --run runs/ae4
    python benchmarks/latent_speedup.py report

``measure`` and ``autoencoder`` write results/latent_speedup/*.json (so arms can be measured in
parallel); ``report`` gathers them into results/latent_speedup.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from common import RESULTS, write_results

ARMS = {
    "pixel": {"config": "faces64-pixel", "checkpoint_every": 10},
    "latent-f4": {"config": "faces64-latent", "checkpoint_every": 100},
    "latent-f8": {"config": "faces64-latent-f8", "checkpoint_every": 100},
}
PARTS = RESULTS / "latent_speedup"


def train(args) -> None:
    arm = ARMS[args.arm]
    command = [
        sys.executable, "-m", "ddpm", "train", "--config", arm["config"], "--out", args.out,
        "--train.time_limit_minutes", str(args.minutes), "--train.keep_checkpoints", "0",
        "--train.checkpoint_every", str(arm["checkpoint_every"]), "--train.sample_every", "0",
        "--train.num_threads", str(args.threads), "--no-progress",
    ]  # fmt: skip
    if args.arm != "pixel":
        command += ["--latent.autoencoder", args.autoencoder]
    print(" ".join(command), flush=True)
    subprocess.run(command, check=True)


def checkpoints_by_minutes(run: Path) -> list[tuple[float, Path]]:
    """(training minutes, checkpoint) of every checkpoint of a run, oldest first."""
    from ddpm.checkpoints import CheckpointDir, read_meta

    found = []
    for path in CheckpointDir(run).complete():
        found.append((read_meta(path)["state"]["elapsed_seconds"] / 60, path))
    return found


def within_budget(found: list[tuple[float, Path]], minutes: float) -> tuple[float, Path]:
    """The last checkpoint whose training time is at most ``minutes`` (+1% for clock jitter)."""
    inside = [item for item in found if item[0] <= minutes * 1.01]
    if not inside:
        raise SystemExit(f"no checkpoint within {minutes} min")
    return inside[-1]


def sampling_seconds_per_image(checkpoint: Path, num: int = 16, repeats: int = 2) -> float:
    """Median wall-clock seconds per image of ``generate`` at the model's own default sampler,
    decoding included for latent models (batch of ``num``)."""
    from ddpm.pipelines import generate, load_model

    loaded = load_model(checkpoint, device="cpu")
    times = []
    for r in range(repeats):
        start = time.perf_counter()
        generate(loaded, num, seed=r, batch_size=num, progress=False)
        times.append((time.perf_counter() - start) / num)
    return statistics.median(times)


def training_throughput(run: Path) -> float:
    """Median images per second over the run's log.jsonl."""
    rates = [json.loads(line)["images_per_second"] for line in (run / "log.jsonl").read_text().splitlines()]
    return statistics.median(rates[1:] or rates)


def fid_of(checkpoint: Path, num: int, steps: int, seed: int = 0) -> dict:
    from ddpm.pipelines import load_model
    from ddpm.pipelines.evaluate import EvalConfig, evaluate
    from ddpm.samplers import SamplerConfig

    loaded = load_model(checkpoint, device="cpu")
    sampler = SamplerConfig(sampler="sde-dpm++2m", steps=steps, clip_x0=loaded.autoencoder is None)
    config = EvalConfig(metrics=("fid",), num=num, seed=seed, sampler=sampler, batch_size=50, progress=False)
    report = evaluate(loaded, config)
    return {"fid": report["metrics"]["fid"], "sampling_seconds": report["timings_seconds"].get("sampling")}


def measure(args) -> None:
    torch.set_num_threads(args.threads)
    run = Path(args.run)
    found = checkpoints_by_minutes(run)
    result = {
        "arm": args.arm,
        "config": ARMS[args.arm]["config"],
        "run": str(run),
        "threads": args.threads,
        "training_images_per_second": training_throughput(run),
        "budgets": [],
    }
    for minutes in [float(b) for b in args.budgets.split(",")]:
        used, checkpoint = within_budget(found, minutes)
        start = time.perf_counter()
        scores = fid_of(checkpoint, args.num, args.steps)
        print(
            f"{args.arm} {minutes} min ({checkpoint.name}, {used:.1f} min): FID {scores['fid']}", flush=True
        )
        result["budgets"].append(
            {
                "budget_minutes": minutes,
                "training_minutes": round(used, 2),
                "checkpoint": checkpoint.name,
                "eval_seconds": round(time.perf_counter() - start, 1),
                **scores,
            }
        )
    result["sampling_seconds_per_image"] = sampling_seconds_per_image(found[-1][1])
    result["num"], result["steps"] = args.num, args.steps
    PARTS.mkdir(parents=True, exist_ok=True)
    (PARTS / f"{args.arm}.json").write_text(json.dumps(result, indent=2) + "\n")


def autoencoder(args) -> None:
    """Reconstruction FID (floor images reconstructed, against the test images) and PSNR."""
    from ddpm.imaging import to_model_range, to_uint8
    from ddpm.pipelines import load_model
    from ddpm.pipelines.autoencoders import load_autoencoder
    from ddpm.pipelines.evaluate import EvalConfig, evaluate, real_images
    from ddpm.training.autoencoder_objective import psnr

    torch.set_num_threads(args.threads)
    coder = load_autoencoder(args.run)
    latent_run = Path(args.latent_run)  # any latent model of this autoencoder: evaluate() needs one
    loaded = load_model(latent_run, device="cpu", autoencoder=args.run)
    data = loaded.config.data

    @torch.no_grad()
    def reconstruct(images: torch.Tensor) -> torch.Tensor:
        out = []
        for start in range(0, len(images), 100):
            x = to_model_range(images[start : start + 100])
            out.append(coder.model.decode(coder.model.encode(x).mode()).clamp(-1, 1))
        return torch.cat(out)

    floor_images = real_images(data, "train", args.num)
    recon = to_uint8(reconstruct(floor_images))
    report = evaluate(loaded, EvalConfig(metrics=("fid",), num=args.num, progress=False), samples=recon)
    test = real_images(data, "test", args.num)
    result = {
        "autoencoder": args.name,
        "run": str(args.run),
        "config": vars(coder.config),
        "scale_factor": coder.scale_factor,
        "training_minutes": round(coder.meta["state"]["elapsed_seconds"] / 60, 2),
        "parameters": sum(p.numel() for p in coder.model.parameters()),
        "reconstruction_fid": report["metrics"]["fid"],
        "psnr_test": psnr(reconstruct(test), to_model_range(test)),
        "num": args.num,
    }
    print(json.dumps(result, indent=2, default=str))
    PARTS.mkdir(parents=True, exist_ok=True)
    (PARTS / f"autoencoder-{args.name}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")


def encoding(args) -> None:
    """Cached against on-the-fly latents: training images per second of the latent-f4 arm for
    ``--steps`` steps each, and the one-off time to encode the training set for the cache."""
    import tempfile

    from ddpm.data import load_dataset
    from ddpm.pipelines import load_experiment_config
    from ddpm.pipelines.autoencoders import load_autoencoder
    from ddpm.pipelines.latent import encode_posteriors

    torch.set_num_threads(args.threads)
    config = load_experiment_config("faces64-latent")
    images = load_dataset(config.data).images
    coder = load_autoencoder(args.autoencoder)
    start = time.perf_counter()
    encode_posteriors(coder, images, progress=False)
    cache_seconds = time.perf_counter() - start
    result = {
        "images": len(images),
        "cache_encoding_seconds": round(cache_seconds, 1),
        "threads": args.threads,
    }
    for mode in ("cache", "on-the-fly"):
        with tempfile.TemporaryDirectory() as tmp:
            command = [
                sys.executable, "-m", "ddpm", "train", "--config", "faces64-latent", "--out", tmp,
                "--latent.autoencoder", args.autoencoder, "--latent.encode", mode,
                "--train.steps", str(args.steps), "--train.log_every", str(args.steps // 3),
                "--train.sample_every", "0", "--train.num_threads", str(args.threads), "--no-progress",
            ]  # fmt: skip
            subprocess.run(command, check=True, capture_output=True)
            rates = [
                json.loads(line)["images_per_second"]
                for line in Path(tmp, "log.jsonl").read_text().splitlines()
            ]
        result[mode] = {"images_per_second": statistics.median(rates[1:])}
    result["speedup_of_cache"] = (
        result["cache"]["images_per_second"] / result["on-the-fly"]["images_per_second"]
    )
    print(json.dumps(result, indent=2))
    PARTS.mkdir(parents=True, exist_ok=True)
    (PARTS / "encoding.json").write_text(json.dumps(result, indent=2) + "\n")


def report(args) -> None:
    arms = {p.stem: json.loads(p.read_text()) for p in sorted(PARTS.glob("*.json")) if p.stem in ARMS}
    arms = {name: arms[name] for name in ARMS if name in arms}
    coders = {
        p.stem.removeprefix("autoencoder-"): json.loads(p.read_text())
        for p in sorted(PARTS.glob("autoencoder-*.json"))
    }
    enc_path = PARTS / "encoding.json"
    enc = json.loads(enc_path.read_text()) if enc_path.is_file() else None
    result = {"arms": arms, "autoencoders": coders, "encoding": enc, "verdict": verdict(arms, coders)}
    md = [
        "# Latent against pixel diffusion, faces 64×64, equal training time (CPU, one thread per arm)",
        "",
        "| arm | training min | FID | floor | train img/s | s / image sampled |",
        "|---|---|---|---|---|---|",
    ]
    for name, arm in arms.items():
        for b in arm["budgets"]:
            md.append(
                f"| {name} | {b['training_minutes']:.1f} | {b['fid']['value']:.1f} | "
                f"{b['fid']['floor']:.1f} | {arm['training_images_per_second']:.1f} | "
                f"{arm['sampling_seconds_per_image']:.3f} |"
            )
    md += [
        "",
        "| autoencoder | f | latent | minutes | reconstruction FID | PSNR dB | scale factor |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, c in coders.items():
        f = 2 ** (len(c["config"]["channel_mult"]) - 1)
        size = c["config"]["image_size"] // f
        md.append(
            f"| {name} | {f} | {c['config']['latent_channels']}×{size}×{size} | "
            f"{c['training_minutes']:.1f} | {c['reconstruction_fid']['value']:.1f} | "
            f"{c['psnr_test']:.2f} | {c['scale_factor']:.3f} |"
        )
    if enc:
        md += [
            "",
            f"Encoding: cached latents train at {enc['cache']['images_per_second']:.1f} images/s, "
            f"on-the-fly encoding at {enc['on-the-fly']['images_per_second']:.1f} "
            f"({enc['speedup_of_cache']:.1f}× for the cache), which costs "
            f"{enc['cache_encoding_seconds']:.0f} s once for {enc['images']} images.",
        ]
    md += ["", *[f"- {line}" for line in result["verdict"]]]
    write_results("latent_speedup", result, md)
    plot(arms, coders)


def verdict(arms: dict, coders: dict) -> list[str]:
    lines = []
    pixel = arms.get("pixel")
    if not pixel:
        return lines
    final_fid = pixel["budgets"][-1]["fid"]["value"]
    final_minutes = pixel["budgets"][-1]["training_minutes"]
    for name, arm in arms.items():
        if name == "pixel":
            continue
        reached = [b for b in arm["budgets"] if b["fid"]["value"] <= final_fid]
        when = f"{reached[0]['training_minutes']:.1f} min" if reached else "not within its budgets"
        if reached and reached[0] is arm["budgets"][0]:
            when = f"its first measured budget, {when} (or sooner)"
        speed = pixel["sampling_seconds_per_image"] / arm["sampling_seconds_per_image"]
        lines.append(
            f"{name}: reaches the pixel model's final FID {final_fid:.1f} ({final_minutes:.1f} min) "
            f"at {when}; "
            f"samples {speed:.1f}× faster per image; trains "
            f"{arm['training_images_per_second'] / pixel['training_images_per_second']:.1f}× more images/s"
        )
        coder = coders.get(name.removeprefix("latent-"))
        if coder:
            rfid = coder["reconstruction_fid"]["value"]
            ratio = rfid / arm["budgets"][-1]["fid"]["value"]
            line = f"{name}: its autoencoder's reconstruction FID {rfid:.1f} is {ratio:.2f}× its final FID"
            lines.append(line)
    return lines


def plot(arms: dict, coders: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, arm in arms.items():
        xs = [b["training_minutes"] for b in arm["budgets"]]
        ax.plot(xs, [b["fid"]["value"] for b in arm["budgets"]], marker="o", label=name)
    floor = next(iter(arms.values()))["budgets"][0]["fid"]["floor"] if arms else None
    if floor is not None:
        ax.axhline(floor, color="grey", linestyle=":", label="real vs real")
    for name, c in coders.items():
        ax.axhline(
            c["reconstruction_fid"]["value"], linestyle="--", linewidth=0.8, label=f"{name} reconstructions"
        )
    ax.set_xlabel("training minutes (one CPU thread)")
    ax.set_ylabel("FID (lower is better)")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.set_title("faces 64×64: latent vs pixel diffusion")
    fig.tight_layout()
    fig.savefig(RESULTS / "latent_speedup.png", dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train")
    p.add_argument("arm", choices=ARMS)
    p.add_argument("--out", required=True)
    p.add_argument("--minutes", type=float, default=40)
    p.add_argument("--autoencoder", help="autoencoder run for the latent arms")
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(fn=train)
    p = sub.add_parser("measure")
    p.add_argument("arm", choices=ARMS)
    p.add_argument("--run", required=True)
    p.add_argument("--budgets", default="10,20,40")
    p.add_argument("--num", type=int, default=500)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(fn=measure)
    p = sub.add_parser("autoencoder")
    p.add_argument("name", help="f4 or f8")
    p.add_argument("--run", required=True)
    p.add_argument("--latent-run", required=True, help="a latent model trained on this autoencoder")
    p.add_argument("--num", type=int, default=500)
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(fn=autoencoder)
    p = sub.add_parser("encoding")
    p.add_argument("--autoencoder", required=True)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(fn=encoding)
    p = sub.add_parser("report")
    p.set_defaults(fn=report)
    args = parser.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
