"""Time to quality of training recipes at equal wall clock on Fashion-MNIST 32×32: ours (several
recipes and one-at-a-time ablations), k-diffusion's recipe (on our U-Net and on its own model) and
denoising-diffusion-pytorch's defaults, each trained for the same minutes on one thread.

Phases (run them in order; ``--runs`` holds everything between them):

    python benchmarks/recipe_race.py train --arms demo,edm,kdiff-our-unet --minutes 10 --marks 2.5,5,10
    python benchmarks/recipe_race.py evaluate --arms demo,edm,kdiff-our-unet --minutes 10 --num 500
    python benchmarks/recipe_race.py report

Our arms are bundled ``fashion-mnist-demo`` plus the overrides of :data:`OUR_ARMS`; each is planned
for the budget (steps = budget / measured seconds per step, so a cosine learning rate ends with
it), stopped by ``train.time_limit_minutes`` and checkpointed every mark's interval of training
time. Peer arms run in ``.venv-peers`` (``benchmarks/peers/setup.sh``) and save their EMA samples
at the marks (training clock paused while sampling). Every arm is scored on ``--num`` samples by
domain FD (and Inception FID with ``--fid``, at the last mark) against test images, next to the
same statistic between train and test images (the floor); each arm is sampled by its own best
sampler at about 35 network evaluations (ours: the best of three solvers at the last mark, judged on
``--trial-num`` samples, then that one at every mark). Writes results/recipe_race.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from common import RESULTS, DomainProbe, write_results
from image_to_image import step_seconds

from ddpm.checkpoints import read_meta
from ddpm.configuration import merge
from ddpm.data import load_fashion_mnist
from ddpm.imaging import to_uint8
from ddpm.pipelines import load_model
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
    # today's README recipe: ε, uniform t, L_simple, warm-up EMA 0.995, lr 1e-3 cosine, batch 32
    "demo": {},
    "edm": EDM,
    "v-min-snr": {"diffusion": {"prediction_type": "v"}, "train": {"loss_weighting": "min-snr"}},
    "eps-min-snr": {"train": {"loss_weighting": "min-snr"}},
    "v-snr+1": {"diffusion": {"prediction_type": "v"}},
    "learned-variance": {"diffusion": {"learned_variance": True}, "sample": {"variance": "learned"}},
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


def train_ours(arm: str, out: Path, minutes: float, every: float, threads: int) -> dict:
    overrides = OUR_ARMS[arm]
    config = load_experiment_config("fashion-mnist-demo", overrides)
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
    config = load_experiment_config("fashion-mnist-demo", merge(overrides, {"train": train}))
    result = run_training(config, out, progress=False)
    record = {"arm": arm, "overrides": overrides, "planned_steps": steps, "seconds_per_step": per_step}
    record.update(steps=result.step, elapsed_seconds=result.elapsed_seconds)
    (out / "arm.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def train_peer(arm: str, out: Path, minutes: float, marks: list[float], num: int, threads: int) -> None:
    if not PEERS_PYTHON.exists():
        raise SystemExit("peer arms need .venv-peers: run benchmarks/peers/setup.sh first")
    script = Path(__file__).parent / "peers" / PEER_ARMS[arm]
    cmd = [str(PEERS_PYTHON), str(script), "--arm", arm, "--minutes", str(minutes)]
    cmd += ["--snapshots", ",".join(f"{m:g}" for m in marks), "--num", str(num), "--nfe", "35"]
    cmd += ["--threads", str(threads), "--out", str(out)]
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
    """Domain FD (and optionally FID) of uint8 samples against ``num`` test images, with floors. The
    Inception statistics of the test images and the FID floor depend only on ``num``: they are kept
    in ``cache`` (an .npz) so every evaluator after the first skips those 2 × ``num`` images."""

    def __init__(self, num: int, fid: bool, cache: Path | None = None):
        self.probe = DomainProbe(num)
        train = load_fashion_mnist(split="train").images
        self.floor_real = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(7))[:num]]
        self.floor = {"domain_fd": self.probe(self.floor_real)["domain_fd"]}
        self.inception = None
        if fid:
            from ddpm.eval import frechet_distance, gaussian_stats
            from ddpm.eval.inception import InceptionFeatures

            self.inception = InceptionFeatures()
            self._fd, self._stats = frechet_distance, gaussian_stats
            if cache is not None and cache.is_file():
                kept = np.load(cache)
                self.reference = (kept["mu"], kept["sigma"])
                self.floor["fid"] = float(kept["floor_fid"])
            else:
                self.reference = gaussian_stats(self.inception(self.probe.reference))
                self.floor["fid"] = self._fid(self.floor_real)
                if cache is not None:
                    cache.parent.mkdir(parents=True, exist_ok=True)
                    partial = cache.with_name(cache.name + ".partial.npz")
                    np.savez(
                        partial, mu=self.reference[0], sigma=self.reference[1], floor_fid=self.floor["fid"]
                    )
                    partial.replace(cache)

    def _fid(self, images: torch.Tensor) -> float:
        return self._fd(*self._stats(self.inception(images)), *self.reference)

    def __call__(self, images: torch.Tensor, with_fid: bool) -> dict:
        row = {"domain_fd": self.probe(images)["domain_fd"]}
        if with_fid and self.inception is not None:
            row["fid"] = self._fid(images)
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
        trials[name] = scorer(images, False)["domain_fd"]
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


def report() -> None:
    folder = RESULTS / "recipe_race"
    results = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    lines = ["| budget | arm | sampler | minutes | steps | images seen | domain FD | × floor | FID |"]
    lines.append("|---:|---|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        floor = r["floor"]["domain_fd"]
        for a in r["arms"]:
            for p in a["points"]:
                fid = f"{p['fid']:.1f}" if "fid" in p else ""
                lines.append(
                    f"| {r['budget_minutes']:g} | {a['arm']} | {p['sampler']} | {p['minutes']:g} | "
                    f"{p['steps']} | {p['images_seen']:,} | {p['domain_fd']:.1f} | "
                    f"{p['domain_fd'] / floor:.2f} | {fid} |"
                )
    notes = [f"Floors (train vs test, same N): {', '.join(json.dumps(r['floor']) for r in results)}."]
    write_results("recipe_race", {"budgets": results}, [*lines, "", *notes])
    _plot(results)


def _plot(results: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in results:
        for a in r["arms"]:
            xs = [p["minutes"] for p in a["points"]]
            ys = [p["domain_fd"] for p in a["points"]]
            ax.plot(xs, ys, marker="o", label=f"{a['arm']} ({r['budget_minutes']:g} min plan)")
        ax.axhline(r["floor"]["domain_fd"], color="grey", ls="--", lw=0.8)
    ax.set_xlabel("training minutes (one CPU thread)")
    ax.set_ylabel("domain FD (lower is better)")
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
    args = p.parse_args()
    if args.phase == "report":
        return report()
    marks = (
        [float(m) for m in args.marks.split(",")] if args.marks else [args.minutes * k / 4 for k in (1, 2, 4)]
    )
    if marks[-1] != args.minutes:
        raise SystemExit("the last mark must equal --minutes")
    runs = Path(args.runs) / f"{args.minutes:g}min"
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
                train_peer(arm, out, args.minutes, marks, args.num, args.threads)
            else:
                train_ours(arm, out, args.minutes, marks[0], args.threads)
            print(f"{arm}: trained in {out}", flush=True)
        return None
    torch.set_num_threads(args.threads)
    scorer = Scorer(args.num, args.fid, Path(args.runs) / f"inception-reference-{args.num}.npz")
    folder = RESULTS / "recipe_race"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{args.minutes:g}min.json"
    for arm in arms:
        row = evaluate_arm(arm, runs / arm, marks, scorer, args.num, args.trial_num)
        print(json.dumps(row["points"][-1]), flush=True)
        # re-read before writing, so evaluators of different arms can run side by side
        done = json.loads(path.read_text()) if path.exists() else {"arms": []}
        result = {
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
