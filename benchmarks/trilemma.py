"""The generative-model trilemma, measured: a GAN, a VAE, a normalising flow and diffusion on
Fashion-MNIST 32×32 and faces 32×32, each trained for the same wall-clock on this machine, plus the
diffusion model at 1, 4, 10 and 50 network evaluations and the shipped diffusion models.

Quality = FID and precision (Kynkäänniemi et al. 2019); diversity = recall, and on Fashion-MNIST the
class histogram (normalised entropy, share of samples the classifier recognises with p ≥ 0.9);
likelihood in bits/dim where the model has one; speed = images per second and time to the first
image. Every arm is written to results/trilemma/ARM.json as soon as it is measured.

    python benchmarks/trilemma.py evaluate [--arms fm-gan,...] [--num 500] [--real 1000] [--real-faces 500]
    python benchmarks/trilemma.py speed      # run with nothing else on the machine
    python benchmarks/trilemma.py report     # results/trilemma.{json,md,png}

The trained runs come from (one thread each, two at a time, 10 minutes):
    ddpm train --config {fashion-mnist,faces}-{gan,vae,flow} --out runs/trilemma/NAME \\
        --train.time_limit_minutes 10 --train.num_threads 1
    ddpm train --config fashion-mnist-demo --out runs/pitfalls/target-eps --train.steps 600 \\
        --train.time_limit_minutes 10 --train.num_threads 1 --train.loss_weighting simple
        (its 10-minute checkpoint, step 431)
    ddpm train --config faces --out runs/trilemma/faces-diffusion --train.steps 600 \\
        --train.time_limit_minutes 10 --train.num_threads 1
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from common import RESULTS, write_results

from ddpm.checkpoints import read_meta
from ddpm.data import DataConfig
from ddpm.eval.features import cached_features, domain_space, inception_space
from ddpm.eval.frechet import frechet_distance, gaussian_stats
from ddpm.eval.precision_recall import precision_recall
from ddpm.imaging import to_uint8
from ddpm.pipelines import generate, load_model
from ddpm.pipelines.baselines import generate_baseline, is_baseline, load_baseline
from ddpm.pipelines.evaluate import EvalConfig, evaluate, real_images, real_set_key
from ddpm.pipelines.locate import resolve_checkpoint
from ddpm.pipelines.metrics import class_report

OUT = RESULTS / "trilemma"
RUNS = Path(__file__).resolve().parent.parent / "runs"
FM_DIFFUSION = RUNS / "pitfalls/target-eps/checkpoints/step-0000431"  # its state after 10 minutes
FACES_DIFFUSION = RUNS / "trilemma/faces-diffusion"
# the diffusion model's sampler at each budget of network evaluations (NFE)
NFE_SAMPLERS = {
    1: ("ddim", {"eta": 0.0}),
    4: ("unipc-bh1", {}),
    10: ("unipc-bh1", {}),
    50: ("sde-dpm++2m", {}),
}


@dataclass(frozen=True)
class Arm:
    name: str
    data: str  # "fashion-mnist" or "faces"
    family: str  # gan, vae, flow, diffusion
    checkpoint: str
    nfe: int = 1
    note: str = ""


def arms() -> list[Arm]:
    out = []
    for data, short in (("fashion-mnist", "fm"), ("faces", "faces")):
        for family in ("gan", "vae", "flow"):
            out.append(
                Arm(f"{short}-{family}", data, family, str(RUNS / f"trilemma/{data}-{family}"), note="10 min")
            )
        trained = FM_DIFFUSION if data == "fashion-mnist" else FACES_DIFFUSION
        for nfe in NFE_SAMPLERS:
            out.append(Arm(f"{short}-diffusion-{nfe}", data, "diffusion", str(trained), nfe, "10 min"))
        shipped = "fashion-mnist" if data == "fashion-mnist" else "faces"
        out.append(Arm(f"{short}-shipped-50", data, "diffusion", shipped, 50, "shipped"))
    return out


def sampler_for(loaded, nfe: int):
    name, extra = NFE_SAMPLERS[nfe]
    return replace(loaded.config.sample, sampler=name, steps=nfe, **extra)


def load(arm: Arm):
    path = resolve_checkpoint(arm.checkpoint)
    if is_baseline(read_meta(path)):
        return load_baseline(path, device="cpu")
    return load_model(path, device="cpu")


class Judge:
    """The metrics of ``ddpm eval`` for one data set, with the real sets' features computed once:
    FID (Inception) of ``num`` samples against ``real`` test images, its floor (``real`` train
    images), precision/recall (Kynkäänniemi et al. 2019, k = 3) in the domain classifier's space on
    Fashion-MNIST and Inception's on faces, the class histogram on Fashion-MNIST."""

    def __init__(self, data_name: str, real: int):
        self.data = DataConfig(dataset=data_name, image_size=32, channels=3 if data_name == "faces" else 1)
        self.inception = inception_space(progress=False)
        test = functools.cache(lambda: real_images(self.data, "test", real))
        train = functools.cache(lambda: real_images(self.data, "train", real))
        key = real_set_key(self.data, real, test)
        test_features = cached_features(self.inception, f"{key}-test", test)
        self.test_stats = gaussian_stats(test_features)
        self.inception_real = test_features
        floor = cached_features(self.inception, f"{key}-train", train)
        self.fid_floor = frechet_distance(*gaussian_stats(floor), *self.test_stats)
        self.classifier = None
        if data_name == "fashion-mnist":
            self.pr_space, self.classifier = domain_space(progress=False)
            self.pr_real = cached_features(self.pr_space, f"{key}-test", test)
            self.pr_floor = cached_features(self.pr_space, f"{key}-train", train)
            self.floor_images = train
        else:
            self.pr_space, self.pr_real, self.pr_floor = self.inception, test_features, floor
        self.real = real

    def __call__(self, fake: torch.Tensor) -> dict:
        f_inc = self.inception(fake)
        f_pr = f_inc if self.pr_space is self.inception else self.pr_space(fake)
        p, r = precision_recall(self.pr_real, f_pr)
        pf, rf = precision_recall(self.pr_real, self.pr_floor[: len(fake)])  # as many as the samples
        out = {
            "fid": {
                "value": frechet_distance(*gaussian_stats(f_inc), *self.test_stats),
                "floor": self.fid_floor,
            },
            "pr": {
                "precision": p,
                "recall": r,
                "floor_precision": pf,
                "floor_recall": rf,
                "space": self.pr_space.name,
            },
        }
        if self.pr_space is not self.inception:  # Fashion-MNIST: Inception's view as well
            p, r = precision_recall(self.inception_real, f_inc)
            out["pr_inception"] = {"precision": p, "recall": r, "space": "inception"}
        self.last_features = {"inception": f_inc, self.pr_space.name: f_pr}
        if self.classifier is not None:
            out["classes"] = class_report(self.classifier, fake, self.floor_images()[: len(fake)])
        return out


def evaluate_arm(arm: Arm, judge: Judge, num: int, nll_num: int) -> dict:
    """``num`` samples of the arm scored by ``judge``; the likelihood where the model has one."""
    loaded = load(arm)
    start = time.perf_counter()
    if arm.family == "diffusion":
        sampler = sampler_for(loaded, arm.nfe)
        images = generate(loaded, num, seed=0, sampler=sampler, batch_size=100, progress=False).images
    else:
        images = generate_baseline(loaded, num, seed=0, batch_size=100, progress=False)
    sampling = time.perf_counter() - start
    fake = to_uint8(images)
    report = {"num_samples": num, "num_real": judge.real, "metrics": judge(fake)}
    np.savez_compressed(
        RUNS / "trilemma" / f"{arm.name}-samples.npz", images=fake.numpy(), **judge.last_features
    )
    if arm.family in ("vae", "flow") or (arm.family == "diffusion" and arm.nfe == 50):
        nll = evaluate(
            loaded, EvalConfig(metrics=("nll",), nll_num=nll_num, batch_size=nll_num, progress=False)
        )
        report["metrics"]["nll"] = nll["metrics"]["nll"]
    report["wall_seconds"] = time.perf_counter() - start
    report["sampling_seconds"] = sampling
    state = loaded.meta.get("state", {})
    report["arm"] = {**vars(arm), "step": state.get("step"), "images_seen": state.get("images_seen")}
    report["training_seconds"] = state.get("elapsed_seconds")
    return report


def cmd_evaluate(args) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    chosen = [a for a in arms() if not args.arms or a.name in args.arms.split(",")]
    judges = {}
    for arm in chosen:
        path = OUT / f"{arm.name}.json"
        if path.is_file() and not args.again:
            print(f"{arm.name}: measured already ({path})")
            continue
        real = args.real if arm.data == "fashion-mnist" else args.real_faces
        if arm.data not in judges:
            judges[arm.data] = Judge(arm.data, real)
        report = evaluate_arm(arm, judges[arm.data], args.num, args.nll_num)
        path.write_text(json.dumps(report, indent=2) + "\n")
        m = report["metrics"]
        print(
            f"{arm.name}: FID {m['fid']['value']:.1f}, precision {m['pr']['precision']:.3f}, "
            f"recall {m['pr']['recall']:.3f}",
            flush=True,
        )


@torch.no_grad()
def speed_of(arm: Arm, batch: int, repeats: int) -> dict:
    """Seconds to the first image (one image, after one warm-up call) and images per second (a batch)."""
    loaded = load(arm)

    def draw(n: int):
        if arm.family == "diffusion":
            generate(loaded, n, sampler=sampler_for(loaded, arm.nfe), batch_size=n, progress=False)
        else:
            generate_baseline(loaded, n, batch_size=n, progress=False)

    draw(1)
    first = []
    for _ in range(repeats):
        start = time.perf_counter()
        draw(1)
        first.append(time.perf_counter() - start)
    start = time.perf_counter()
    draw(batch)
    per_second = batch / (time.perf_counter() - start)
    return {"first_image_seconds": min(first), "images_per_second": per_second, "batch": batch}


def cmd_speed(args) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    speeds = {}
    for arm in arms():
        speeds[arm.name] = speed_of(arm, args.batch, args.repeats)
        print(arm.name, speeds[arm.name], flush=True)
    speeds["_conditions"] = {
        "threads": torch.get_num_threads(),
        "note": args.note,
    }
    (OUT / "speed.json").write_text(json.dumps(speeds, indent=2) + "\n")


def row(arm: Arm, report: dict, speed: dict) -> dict:
    m = report["metrics"]
    out = {
        "arm": arm.name,
        "data": arm.data,
        "family": arm.family,
        "nfe": arm.nfe,
        "budget": arm.note,
        "step": report["arm"].get("step"),
        "fid": m["fid"]["value"],
        "fid_floor": m["fid"]["floor"],
        "precision": m["pr"]["precision"],
        "recall": m["pr"]["recall"],
        "pr_space": m["pr"]["space"],
        "precision_inception": m.get("pr_inception", m["pr"])["precision"],
        "recall_inception": m.get("pr_inception", m["pr"])["recall"],
        "num": report["num_samples"],
        "num_real": report["num_real"],
    }
    if "classes" in m:
        out["class_entropy"] = m["classes"]["normalised_entropy"]
        out["confident_share"] = m["classes"]["confident_share"]
    if "nll" in m:
        out["bits_per_dim"] = m["nll"]["bits_per_dim"]
    out.update(speed.get(arm.name, {}))
    return out


def cell(r: dict, key: str, fmt: str) -> str:
    return format(r[key], fmt) if r.get(key) is not None else "–"


def cmd_report(args) -> None:
    speed = json.loads((OUT / "speed.json").read_text()) if (OUT / "speed.json").is_file() else {}
    rows = []
    for arm in arms():
        path = OUT / f"{arm.name}.json"
        if path.is_file():
            rows.append(row(arm, json.loads(path.read_text()), speed))
    lines = [
        "# The trilemma on our data",
        "",
        "Each model trained for 10 minutes of one CPU thread (two runs side by side); 'shipped' is the "
        "pretrained diffusion model. Samples against real test images ("
        + ", ".join(sorted({f"{r['num']} against {r['num_real']} on {r['data']}" for r in rows}))
        + "); FID floor = as many train images against the test images. Precision/recall in the "
        "domain classifier's space on Fashion-MNIST, Inception's on faces. Speed: "
        + (
            f"{speed['_conditions']['threads']} threads, {speed['_conditions']['note']}."
            if speed
            else "not measured."
        ),
        "",
        "| data | model | NFE | FID (floor) | precision | recall | class entropy | recognised | bits/dim "
        "| img/s | first image (s) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['data']} | {r['family']} ({r['budget']}) | {r['nfe']} "
            f"| {r['fid']:.1f} ({r['fid_floor']:.1f}) | {r['precision']:.3f} | {r['recall']:.3f} "
            f"| {cell(r, 'class_entropy', '.3f')} "
            f"| {cell(r, 'confident_share', '.3f')} | {cell(r, 'bits_per_dim', '.2f')} "
            f"| {cell(r, 'images_per_second', '.1f')} | {cell(r, 'first_image_seconds', '.3f')} |"
        )
    write_results("trilemma", {"rows": rows, "speed_conditions": speed.get("_conditions")}, lines)
    plot(rows)


MARKERS = {1: "o", 4: "s", 10: "D", 50: "^"}


def _label(r: dict) -> str:
    name = {"gan": "GAN", "vae": "VAE", "flow": "flow"}.get(r["family"], f"diffusion, {r['nfe']} NFE")
    return f"shipped, {r['nfe']} NFE" if r["budget"] == "shipped" else name


def plot(rows: list[dict]) -> None:
    """Top: precision against recall (Inception space, for both data sets), one legend entry per
    arm with its images per second. Bottom: FID against images per second (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"gan": "tab:red", "vae": "tab:blue", "flow": "tab:green", "diffusion": "tab:purple"}
    fig, axes = plt.subplots(2, 2, figsize=(12, 9.5))
    for col, data in enumerate(("fashion-mnist", "faces")):
        top, bottom = axes[0, col], axes[1, col]
        for r in (r for r in rows if r["data"] == data):
            marker = "*" if r["budget"] == "shipped" else MARKERS.get(r["nfe"], "o")
            style = {"c": colours[r["family"]], "marker": marker, "s": 140 if marker == "*" else 70}
            speed = r.get("images_per_second")
            label = _label(r) + (f" ({speed:.0f} img/s)" if speed else "")
            top.scatter(r["recall_inception"], r["precision_inception"], label=label, alpha=0.85, **style)
            if speed:
                bottom.scatter(speed, r["fid"], alpha=0.85, **style)
                bottom.annotate(
                    _label(r), (speed, r["fid"]), fontsize=8, xytext=(5, 3), textcoords="offset points"
                )
        floor = next((r["fid_floor"] for r in rows if r["data"] == data), None)
        top.set(
            title=f"{data} 32×32",
            xlabel="recall (diversity, Inception)",
            ylabel="precision (quality, Inception)",
        )
        top.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02))
        top.legend(fontsize=7.5, loc="lower right")
        top.grid(alpha=0.3)
        bottom.set(
            xscale="log", xlabel="images per second (2 CPU threads, batch 64)", ylabel="FID (lower is better)"
        )
        if floor:
            bottom.axhline(floor, color="grey", ls="--", lw=1)
            bottom.annotate(
                "real vs real (FID floor)", (bottom.get_xlim()[0], floor), fontsize=8, color="grey",
                xytext=(4, 3), textcoords="offset points",
            )  # fmt: skip
        bottom.grid(alpha=0.3, which="both")
    fig.suptitle("The trilemma at 10 minutes of training: quality, diversity, speed")
    fig.tight_layout()
    fig.savefig(RESULTS / "trilemma.png", dpi=120)
    print(f"wrote {RESULTS / 'trilemma.png'}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(required=True)
    e = sub.add_parser("evaluate")
    e.add_argument("--arms", default="", help="comma-separated arm names (default: all)")
    e.add_argument("--num", type=int, default=500, help="samples per arm (default: 500)")
    e.add_argument(
        "--real", type=int, default=1000, help="Fashion-MNIST real test/train images (default: 1000)"
    )
    e.add_argument("--real-faces", type=int, default=500, help="faces real test/train images (default: 500)")
    e.add_argument("--nll-num", type=int, default=32, help="test images for the likelihood (default: 32)")
    e.add_argument("--again", action="store_true", help="measure arms that have results already")
    e.set_defaults(handler=cmd_evaluate)
    s = sub.add_parser("speed")
    s.add_argument("--batch", type=int, default=64)
    s.add_argument("--repeats", type=int, default=3)
    s.add_argument("--note", default="nothing else running")
    s.set_defaults(handler=cmd_speed)
    r = sub.add_parser("report")
    r.set_defaults(handler=cmd_report)
    args = p.parse_args()
    args.handler(args)


if __name__ == "__main__":
    main()
