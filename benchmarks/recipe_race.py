"""Time to quality of training recipes at equal wall clock on Fashion-MNIST 32×32: ours (several
recipes and one-at-a-time ablations), k-diffusion's recipe (on our U-Net and on its own model) and
denoising-diffusion-pytorch's defaults, each trained for the same minutes on one thread. With
``--data faces`` our arms start from the bundled ``faces`` config and race ddpm-pytorch on the
faces 32×32 by Inception FID (results/recipe_race/faces-*.json, runs in RUNS/faces-*min).

Phases (run them in order; ``--runs`` holds everything between them):

    python benchmarks/recipe_race.py train --arms demo,edm,kdiff-our-unet --minutes 10 --marks 2.5,5,10
    python benchmarks/recipe_race.py evaluate --arms demo,edm,kdiff-our-unet --minutes 10 --num 500
    python benchmarks/recipe_race.py report

Our arms are bundled ``fashion-mnist-demo`` (or ``faces``) plus the overrides of :data:`OUR_ARMS`;
each is planned for the budget (steps = budget / measured seconds per step, so a cosine learning
rate ends with it), stopped by ``train.time_limit_minutes`` and checkpointed every mark's interval of training
time. Peer arms run in ``.venv-peers`` (``benchmarks/peers/setup.sh``) and save their EMA samples
at the marks (training clock paused while sampling). Every arm is scored on ``--num`` samples by
domain FD (and Inception FID with ``--fid``, at the last mark) against test images, next to the
same statistic between train and test images (the floor); each arm is sampled by its own best
sampler at about 35 network evaluations (ours: the best of three solvers at the last mark, judged on
``--trial-num`` samples, then that one at every mark). Writes results/recipe_race.{json,md,png}.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from common import RESULTS, DomainProbe, write_results
from image_to_image import step_seconds

from ddpm.checkpoints import read_meta
from ddpm.configuration import merge
from ddpm.data import DataConfig, load_dataset
from ddpm.eval import frechet_distance, gaussian_stats
from ddpm.eval.features import cached_features, inception_space
from ddpm.imaging import to_uint8
from ddpm.pipelines import load_model
from ddpm.pipelines.evaluate import real_images, real_set_key
from ddpm.pipelines.experiment import load_experiment_config, run_training
from ddpm.pipelines.generation import generate
from ddpm.samplers import SamplerConfig

ROOT = Path(__file__).parent.parent
PEERS_PYTHON = ROOT / ".venv-peers" / "bin" / "python"

EDM = {
    "diffusion": {"preconditioning": "edm", "prediction_type": "x0"},
    "train": {"noise_levels": "log-normal", "loss_weighting": "edm", "ema": "power", "ema_sigma_rel": 0.1},
}
OUR_ARMS: dict[str, dict] = {
    # the README's recipe before the race: ε, uniform t, L_simple, warm-up EMA 0.995, lr 1e-3
    # cosine, batch 32 (the bundled configs now weight by min-SNR-5, so L_simple is spelled out)
    "demo": {"train": {"loss_weighting": "simple"}},
    "edm": EDM,
    "v-min-snr": {"diffusion": {"prediction_type": "v"}, "train": {"loss_weighting": "min-snr"}},
    "eps-min-snr": {"train": {"loss_weighting": "min-snr"}},
    "v-snr+1": {"diffusion": {"prediction_type": "v"}, "train": {"loss_weighting": "snr+1"}},
    "learned-variance": {  # L_hybrid = L_simple + λ L_vlb, as Nichol & Dhariwal train it
        "diffusion": {"learned_variance": True},
        "train": {"loss_weighting": "simple"},
        "sample": {"variance": "learned"},
    },
}
# one choice at a time away from the leader at 10 minutes (ε + min-SNR-5); "demo" is its
# uniform-weighting ablation and "v-min-snr" its prediction-target ablation
LEADER = OUR_ARMS["eps-min-snr"]
ABLATIONS: dict[str, dict] = {
    "eps-min-snr-power-ema": merge(LEADER, {"train": {"ema": "power", "ema_sigma_rel": 0.1}}),
    "eps-min-snr-log-normal": merge(LEADER, {"train": {"noise_levels": "log-normal"}}),
    "eps-min-snr-batch64": merge(LEADER, {"train": {"batch_size": 64}}),
    "eps-min-snr-lr3e-4": merge(LEADER, {"train": {"lr": 3e-4}}),
    "eps-min-snr-width48": merge(LEADER, {"model": {"base_channels": 48}}),
}
OUR_ARMS.update(ABLATIONS)
BASE_CONFIG = {"fashion-mnist": "fashion-mnist-demo", "faces": "faces"}  # bundled recipes
PEER_ARMS = {
    "kdiff-our-unet": "kdiffusion_arm.py",
    "kdiff-own": "kdiffusion_arm.py",
    "ddpm-pytorch": "ddpm_pytorch_arm.py",
}
OUR_SAMPLERS = {  # about 35 network evaluations each
    "dpm++2m": SamplerConfig(sampler="dpm++2m", steps=35),
    "sde-dpm++2m": SamplerConfig(sampler="sde-dpm++2m", steps=35),
    "heun": SamplerConfig(sampler="heun", steps=18, spacing="karras"),
}


def train_ours(
    arm: str, out: Path, minutes: float, every: float, threads: int, data: str = "fashion-mnist"
) -> dict:
    overrides = OUR_ARMS[arm]
    config = load_experiment_config(BASE_CONFIG[data], overrides)
    per_step = step_seconds(config)
    steps = max(10, int(minutes * 60 / per_step * 1.05))
    train = {
        "steps": steps,
        "time_limit_minutes": minutes,
        "checkpoint_every_minutes": every,
        "checkpoint_every": 10**9,
        "keep_checkpoints": 0,
        "sample_every": 0,
        "num_threads": threads,
        "precision": "fp32",
    }
    config = load_experiment_config(BASE_CONFIG[data], merge(overrides, {"train": train}))
    result = run_training(config, out, progress=False)
    record = {"arm": arm, "data": data, "base_config": BASE_CONFIG[data], "overrides": overrides}
    record.update(planned_steps=steps, seconds_per_step=per_step)
    record.update(steps=result.step, elapsed_seconds=result.elapsed_seconds)
    (out / "arm.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def train_peer(
    arm: str, out: Path, minutes: float, marks: list[float], num: int, threads: int, data: str
) -> None:
    if not PEERS_PYTHON.exists():
        raise SystemExit("peer arms need .venv-peers: run benchmarks/peers/setup.sh first")
    script = Path(__file__).parent / "peers" / PEER_ARMS[arm]
    cmd = [str(PEERS_PYTHON), str(script), "--arm", arm, "--minutes", str(minutes)]
    cmd += ["--snapshots", ",".join(f"{m:g}" for m in marks), "--num", str(num), "--nfe", "35"]
    cmd += ["--threads", str(threads), "--data", data, "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": str(threads)}
    subprocess.run(cmd, check=True, env=env)


def checkpoint_at(run: Path, minutes: float) -> tuple[Path, dict]:
    """The checkpoint saved first after ``minutes`` of training time (or the last one)."""
    found = []
    for path in sorted((run / "checkpoints").glob("step-*")):
        if (path / "checkpoint.json").is_file():
            found.append((path, read_meta(path)["state"]))
    after = [(p, s) for p, s in found if s["elapsed_seconds"] >= minutes * 60 - 1]
    return after[0] if after else found[-1]


def our_samples(ckpt: Path, sampler: SamplerConfig, num: int) -> tuple[torch.Tensor, float]:
    loaded = load_model(ckpt)
    start = time.perf_counter()
    images = generate(loaded, num, seed=0, sampler=sampler, batch_size=100, progress=False).images
    return to_uint8(images), time.perf_counter() - start


class Scorer:
    """The race's metric of uint8 samples against ``num`` test images, with its floor (``num`` train
    images against the same test images): domain FD on Fashion-MNIST (and Inception FID with
    ``fid``), Inception FID on faces. Inception features of the real sets are computed once and
    cached (:func:`ddpm.eval.features.cached_features`), so only the first evaluator pays for them."""

    def __init__(self, data: str, num: int, fid: bool):
        self.metric = "domain_fd" if data == "fashion-mnist" else "fid"
        config = DataConfig(dataset=data, image_size=32, channels=3 if data == "faces" else 1)
        test = functools.cache(lambda: real_images(config, "test", num))
        train = load_dataset(replace(config, split="train")).images
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(7))
        self.floor_real = train[order[:num]]
        self.floor: dict[str, float] = {}
        self.probe = None
        if data == "fashion-mnist":
            self.probe = DomainProbe(num)  # the same test images as ``test``
            self.floor["domain_fd"] = self.probe(self.floor_real)["domain_fd"]
        self.inception = None
        if fid or self.metric == "fid":
            self.inception = inception_space(progress=False)
            key = real_set_key(config, num, test)
            self.reference = gaussian_stats(cached_features(self.inception, f"{key}-test", test))
            floor = cached_features(self.inception, f"{key}-train-seed7", lambda: self.floor_real)
            self.floor["fid"] = frechet_distance(*gaussian_stats(floor), *self.reference)

    def __call__(self, images: torch.Tensor, with_fid: bool) -> dict:
        row = {}
        if self.probe is not None:
            row["domain_fd"] = self.probe(images)["domain_fd"]
        if self.inception is not None and (with_fid or self.metric == "fid"):
            row["fid"] = frechet_distance(*gaussian_stats(self.inception(images)), *self.reference)
        return row


def evaluate_arm(arm: str, run: Path, marks: list[float], scorer: Scorer, num: int, trial_num: int) -> dict:
    info = json.loads((run / "arm.json").read_text())
    points = []
    if arm in PEER_ARMS:
        for snap in info["snapshots"]:
            mark = snap["minutes"]
            if mark not in marks:
                continue
            images = torch.from_numpy(np.load(run / f"samples-{mark:g}min.npz")["images"][:num])
            row = {"minutes": mark, **scorer(images, mark == marks[-1])}
            row.update(steps=snap["steps"], images_seen=snap["images_seen"], sampler=snap["sampler"])
            points.append(row)
        return {"arm": arm, "recipe": info, "points": points}
    last, state = checkpoint_at(run, marks[-1])
    trials = {}
    for name, sampler in OUR_SAMPLERS.items():  # the choice on fewer samples, the score on ``num``
        images, _ = our_samples(last, sampler, trial_num)
        trials[name] = scorer(images, False)[scorer.metric]
    best = min(trials, key=trials.get)
    for mark in marks:
        ckpt, state = checkpoint_at(run, mark)
        images, seconds = our_samples(ckpt, OUR_SAMPLERS[best], num)
        row = {"minutes": mark, **scorer(images, mark == marks[-1])}
        row.update(
            steps=state["step"],
            images_seen=state["images_seen"],
            training_minutes=state["elapsed_seconds"] / 60,
            sampler=best,
            sampling_seconds=seconds,
        )
        points.append(row)
    return {"arm": arm, "recipe": info, "sampler_trials": trials, "trial_num": trial_num, "points": points}


def _primary(result: dict) -> str:
    """The race's metric of a result file: domain FD on Fashion-MNIST, Inception FID on faces."""
    return "domain_fd" if result.get("data", "fashion-mnist") == "fashion-mnist" else "fid"


def report() -> None:
    folder = RESULTS / "recipe_race"
    results = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    lines = ["| data | budget | arm | sampler | minutes | steps | images seen | domain FD | FID | × floor |"]
    lines.append("|---|---:|---|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        metric = _primary(r)
        floor = r["floor"][metric]
        for a in r["arms"]:
            for p in a["points"]:
                fd = f"{p['domain_fd']:.1f}" if "domain_fd" in p else ""
                fid = f"{p['fid']:.1f}" if "fid" in p else ""
                lines.append(
                    f"| {r.get('data', 'fashion-mnist')} | {r['budget_minutes']:g} | {a['arm']} | "
                    f"{p['sampler']} | {p['minutes']:g} | {p['steps']} | {p['images_seen']:,} | {fd} | "
                    f"{fid} | {p[metric] / floor:.2f} |"
                )
    notes = [
        "× floor: of domain FD on Fashion-MNIST, of FID on faces. Floors (train vs test, same N): "
        + ", ".join(
            f"{r.get('data', 'fashion-mnist')} {r['budget_minutes']:g} min {json.dumps(r['floor'])}"
            for r in results
        )
        + "."
    ]
    write_results("recipe_race", {"budgets": results}, [*lines, "", *notes])
    _plot(results)


def _plot(results: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(r.get("data", "fashion-mnist") for r in results))
    names = list(dict.fromkeys(a["arm"] for r in results for a in r["arms"]))
    colour = {name: plt.get_cmap("tab20")(i % 20) for i, name in enumerate(names)}  # one per arm
    longest = max(r["budget_minutes"] for r in results)
    fig, axes = plt.subplots(1, len(datasets), figsize=(7 * len(datasets), 4.5), squeeze=False)
    for ax, data in zip(axes[0], datasets, strict=True):
        for r in (r for r in results if r.get("data", "fashion-mnist") == data):
            metric = _primary(r)
            for a in r["arms"]:
                xs = [p["minutes"] for p in a["points"]]
                ys = [p[metric] for p in a["points"]]
                style = "-" if r["budget_minutes"] == longest else ":"
                label = f"{a['arm']} ({r['budget_minutes']:g} min plan)"
                ax.plot(xs, ys, style, marker="o", color=colour[a["arm"]], label=label)
            ax.axhline(r["floor"][metric], color="grey", ls="--", lw=0.8)
        name = "domain FD" if data == "fashion-mnist" else "Inception FID"
        ax.set_title(f"{data} 32×32 (dashed: real-vs-real floor)")
        ax.set_xlabel("training minutes (one CPU thread)")
        ax.set_ylabel(f"{name} (lower is better)")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / "recipe_race.png", dpi=120)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("phase", choices=("train", "evaluate", "report"))
    p.add_argument("--arms", default="demo,edm,v-min-snr")
    p.add_argument("--minutes", type=float, default=10.0, help="training budget per arm")
    p.add_argument("--marks", default="", help="training-minute marks to score (default: quarter budgets)")
    p.add_argument("--runs", default=str(ROOT / "runs" / "recipe-race"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--num", type=int, default=500, help="samples (and reference images) per score")
    p.add_argument("--trial-num", type=int, default=200, help="samples per solver when choosing one")
    p.add_argument("--fid", action="store_true", help="also Inception FID at the last mark")
    p.add_argument("--note", default="", help="what else was running (goes into the result)")
    p.add_argument(
        "--data",
        choices=tuple(BASE_CONFIG),
        default="fashion-mnist",
        help="32×32 data set; faces races our arms (on the bundled faces config) and ddpm-pytorch by FID",
    )
    args = p.parse_args()
    if args.phase == "report":
        return report()
    marks = (
        [float(m) for m in args.marks.split(",")] if args.marks else [args.minutes * k / 4 for k in (1, 2, 4)]
    )
    if marks[-1] != args.minutes:
        raise SystemExit("the last mark must equal --minutes")
    prefix = "" if args.data == "fashion-mnist" else f"{args.data}-"
    runs = Path(args.runs) / f"{prefix}{args.minutes:g}min"
    arms = args.arms.split(",")
    unknown = [a for a in arms if a not in OUR_ARMS and a not in PEER_ARMS]
    if unknown:
        raise SystemExit(f"unknown arm(s) {unknown}; choose from {[*OUR_ARMS, *PEER_ARMS]}")
    if args.phase == "train":
        torch.set_num_threads(args.threads)
        for arm in arms:
            out = runs / arm
            if (out / "arm.json").exists():
                print(f"{arm}: already trained in {out}")
                continue
            if arm in PEER_ARMS:
                train_peer(arm, out, args.minutes, marks, args.num, args.threads, args.data)
            else:
                train_ours(arm, out, args.minutes, marks[0], args.threads, args.data)
            print(f"{arm}: trained in {out}", flush=True)
        return None
    torch.set_num_threads(args.threads)
    scorer = Scorer(args.data, args.num, args.fid)
    folder = RESULTS / "recipe_race"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{prefix}{args.minutes:g}min.json"
    for arm in arms:
        row = evaluate_arm(arm, runs / arm, marks, scorer, args.num, args.trial_num)
        print(json.dumps(row["points"][-1]), flush=True)
        # re-read before writing, so evaluators of different arms can run side by side
        done = json.loads(path.read_text()) if path.exists() else {"arms": []}
        result = {
            "data": args.data,
            "budget_minutes": args.minutes,
            "marks": marks,
            "num": args.num,
            "threads": args.threads,
            "floor": scorer.floor,
            "note": args.note,
            "torch": torch.__version__,
            "python": sys.version.split()[0],
            "arms": [a for a in done["arms"] if a["arm"] != arm] + [row],
        }
        path.write_text(json.dumps(result, indent=2) + "\n")
    return None


if __name__ == "__main__":
    main()
