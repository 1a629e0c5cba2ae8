"""Distilled students against their teacher's solvers and a GAN, at 1–4 network evaluations.

    python benchmarks/distillation.py train --method progressive --minutes 60
    python benchmarks/distillation.py train --method consistency --minutes 60
    python benchmarks/distillation.py train-gan --minutes 60        # the GAN at the same training time
    python benchmarks/distillation.py evaluate --num 1000
    python benchmarks/distillation.py speed --note "nothing else running"
    python benchmarks/distillation.py report

``train`` distils ``--teacher`` (default: the shipped ``fashion-mnist``) for ``--minutes`` of training
on one thread: progressive distillation spreads the minutes over its rounds (``--start-steps`` down
to one step, the optimiser steps per round from a measured step time), consistency distillation
spends them on one run. ``evaluate`` scores with the trilemma's judge (Inception FID against test
images with its train-vs-test floor; precision / recall in the Fashion-MNIST classifier's space):
the teacher with DDIM and DPM-Solver++(2M) at 1–50 network evaluations and its stored sampler, each
progressive student at the steps of its round, the consistency student at 1, 2 and 4 steps, and the
GAN. ``speed`` measures sampling images per second (a batch of 100). ``report`` writes
results/distillation.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from common import RESULTS, write_results
from trilemma import Judge

from ddpm.checkpoints import CheckpointDir, read_meta
from ddpm.imaging import to_uint8
from ddpm.pipelines import load_model
from ddpm.pipelines.baselines import generate_baseline, load_baseline
from ddpm.pipelines.distillation import distill
from ddpm.pipelines.generation import generate
from ddpm.samplers import SamplerConfig
from ddpm.training.distillation import DistillSettings

ROOT = Path(__file__).parent.parent
RUNS = ROOT / "runs" / "distillation"
OUT = RESULTS / "distillation"
TEACHER_NFE = (1, 2, 4, 8, 20, 50)


def probe_seconds_per_step(teacher: str, method: str, batch: int) -> float:
    """Seconds per distillation step, from a few steps in a scratch folder."""
    import tempfile

    settings = DistillSettings()
    config = {"method": method, "round_steps": 6, "start_steps": 2, "final_steps": 2, "levels": 18}
    with tempfile.TemporaryDirectory() as tmp:
        from dataclasses import replace

        distill(
            teacher,
            Path(tmp) / "probe",
            replace(settings.distill, **config),
            replace(settings.train, batch_size=batch, sample_every=0, checkpoint_every=1000),
            progress=False,
        )
        last = (Path(tmp) / "probe" / "log.jsonl").read_text().splitlines()[-1]
        return json.loads(last)["elapsed_seconds"] / 6  # training time only, not loading


def cmd_train(args) -> None:
    from dataclasses import replace

    torch.set_num_threads(args.threads)
    per_step = probe_seconds_per_step(args.teacher, args.method, args.batch_size)
    budget = int(args.minutes * 60 / per_step)
    settings = DistillSettings()
    if args.method == "progressive":
        rounds = args.start_steps.bit_length()
        config = replace(
            settings.distill, start_steps=args.start_steps, final_steps=1, round_steps=budget // rounds
        )
    else:
        config = replace(settings.distill, method="consistency", round_steps=budget, sample_steps=1)
    train = replace(
        settings.train,
        lr=args.lr,
        batch_size=args.batch_size,
        sample_every=max(1, config.round_steps // 2),
        checkpoint_every=config.round_steps,
        keep_checkpoints=0,
        time_limit_minutes=args.minutes * 1.5,  # a guard: the step count decides
        num_threads=args.threads,
    )
    out = RUNS / args.method
    result = distill(args.teacher, out, config, train, progress=False)
    record = {"method": args.method, "seconds_per_step_probe": per_step, "config": vars(config)}
    record.update(steps=result.step, minutes=result.elapsed_seconds / 60, teacher=args.teacher)
    (out / "arm.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    print(json.dumps(record, default=str))


def cmd_train_gan(args) -> None:
    out = RUNS / "gan"
    cmd = [sys.executable, "-m", "ddpm", "train", "--config", "fashion-mnist-gan", "--out", str(out)]
    cmd += ["--train.time_limit_minutes", str(args.minutes), "--train.num_threads", str(args.threads)]
    cmd += ["--train.steps", "1000000", "--no-progress"]
    subprocess.run(cmd, check=True)


def arms(teacher: str, solvers: tuple[str, ...] = ("ddim", "dpm++2m"), nfes=TEACHER_NFE) -> list[dict]:
    """Every (name, model path, sampler, NFE) to score; students and the GAN where they exist."""
    out = []
    if solvers != ("none",):  # "none": the students and the GAN only
        for name in solvers:
            for nfe in nfes:
                out.append({"name": f"teacher {name}", "path": teacher, "sampler": name, "nfe": nfe})
        out.append({"name": "teacher (stored sampler)", "path": teacher, "sampler": "", "nfe": 50})
    progressive = RUNS / "progressive" / "checkpoints"
    for ckpt in sorted(progressive.glob("step-*")) if progressive.is_dir() else []:
        n = read_meta(ckpt)["distillation"]["student_steps"]
        out.append({"name": "progressive", "path": str(ckpt), "sampler": "ddim", "nfe": n})
    if (RUNS / "consistency" / "arm.json").is_file():
        for nfe in (1, 2, 4):
            out.append(
                {
                    "name": "consistency",
                    "path": str(RUNS / "consistency"),
                    "sampler": "consistency",
                    "nfe": nfe,
                }
            )
    if (RUNS / "gan" / "checkpoints").is_dir():
        out.append({"name": "GAN", "path": str(RUNS / "gan"), "sampler": "gan", "nfe": 1})
    return out


def draw(arm: dict, num: int, batch: int = 100) -> torch.Tensor:
    if arm["sampler"] == "gan":
        return generate_baseline(load_baseline(arm["path"]), num, seed=0, batch_size=batch, progress=False)
    loaded = load_model(arm["path"], device="cpu")
    sampler = loaded.config.sample
    if arm["sampler"]:
        spacing = "trailing" if arm["sampler"] in ("ddim", "consistency") else "auto"
        sampler = SamplerConfig(sampler=arm["sampler"], steps=arm["nfe"], spacing=spacing, clip_x0=True)
    return generate(loaded, num, seed=0, sampler=sampler, batch_size=batch, progress=False).images


def _key(arm: dict) -> str:
    return f"{arm['name']}-{arm['nfe']}".replace(" ", "_").replace("(", "").replace(")", "")


def cmd_evaluate(args) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    judge = Judge("fashion-mnist", args.num)
    nfes = tuple(int(n) for n in args.teacher_nfe.split(","))
    only = set(args.only.split(",")) if args.only else None
    for arm in arms(args.teacher, tuple(args.teacher_solvers.split(",")), nfes):
        if only is not None and arm["name"].split()[0] not in only:
            continue
        path = OUT / f"{_key(arm)}.json"
        if path.is_file() and not args.again:
            continue
        start = time.perf_counter()
        fake = to_uint8(draw(arm, args.num))
        report = {"arm": arm, "num": args.num, "metrics": judge(fake), "seconds": time.perf_counter() - start}
        path.write_text(json.dumps(report, indent=2) + "\n")
        m = report["metrics"]
        print(f"{_key(arm)}: FID {m['fid']['value']:.1f}, recall {m['pr']['recall']:.3f}", flush=True)


def cmd_speed(args) -> None:
    speeds = {}
    for arm in arms(args.teacher):
        draw(arm, 2, 2)  # warm-up
        start = time.perf_counter()
        draw(arm, args.batch, args.batch)
        speeds[_key(arm)] = args.batch / (time.perf_counter() - start)
        print(_key(arm), f"{speeds[_key(arm)]:.1f} img/s", flush=True)
    speeds["_conditions"] = {"threads": torch.get_num_threads(), "note": args.note}
    (OUT / "speed.json").write_text(json.dumps(speeds, indent=2) + "\n")


def cmd_report(args) -> None:
    rows = [json.loads(p.read_text()) for p in sorted(OUT.glob("*.json")) if p.name != "speed.json"]
    speed = json.loads((OUT / "speed.json").read_text()) if (OUT / "speed.json").is_file() else {}
    training = {
        m: json.loads((RUNS / m / "arm.json").read_text())
        for m in ("progressive", "consistency")
        if (RUNS / m / "arm.json").is_file()
    }
    lines = [
        "| model | sampler | NFE | FID | recall | precision | images/s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    rows.sort(key=lambda r: (r["arm"]["name"], r["arm"]["nfe"]))
    for r in rows:
        m, a = r["metrics"], r["arm"]
        ips = speed.get(_key(a))
        lines.append(
            f"| {a['name']} | {a['sampler'] or 'stored'} | {a['nfe']} | {m['fid']['value']:.1f} | "
            f"{m['pr']['recall']:.3f} | {m['pr']['precision']:.3f} | {'' if ips is None else f'{ips:.1f}'} |"
        )
    floor = rows[0]["metrics"]["fid"]["floor"] if rows else float("nan")
    notes = [f"FID floor (train vs test, same N): {floor:.1f}."]
    for m, t in training.items():
        notes.append(
            f"{m}: {t['steps']} distillation steps in {t['minutes']:.1f} min of training "
            "on top of the teacher."
        )
    gan = CheckpointDir(RUNS / "gan").latest()
    if gan is not None:
        state = read_meta(gan)["state"]
        training["GAN"] = {"steps": state["step"], "minutes": state["elapsed_seconds"] / 60}
        notes.append(f"GAN: {state['step']} steps in {training['GAN']['minutes']:.1f} min of training.")
    if speed.get("_conditions"):
        notes.append(f"images/s: {speed['_conditions']['threads']} threads, {speed['_conditions']['note']}.")
    write_results("distillation", {"rows": rows, "speed": speed, "training": training}, [*lines, "", *notes])
    _plot(rows)


def _plot(rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    series: dict[str, list] = {}
    for r in rows:
        series.setdefault(r["arm"]["name"], []).append(r)
    for name, rs in series.items():
        rs.sort(key=lambda r: r["arm"]["nfe"])
        xs = [r["arm"]["nfe"] for r in rs]
        axes[0].plot(xs, [r["metrics"]["fid"]["value"] for r in rs], marker="o", label=name)
        axes[1].plot(xs, [r["metrics"]["pr"]["recall"] for r in rs], marker="o", label=name)
    for ax, label in zip(axes, ("FID (lower is better)", "recall"), strict=True):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("network evaluations per image")
        ax.set_ylabel(label)
    axes[0].set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / "distillation.png", dpi=120)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("phase", choices=("train", "train-gan", "evaluate", "speed", "report"))
    p.add_argument("--teacher", default="fashion-mnist")
    p.add_argument("--method", choices=("progressive", "consistency"), default="progressive")
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--start-steps", type=int, default=16, help="progressive: steps of the first student")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--num", type=int, default=1000)
    p.add_argument(
        "--teacher-solvers", default="ddim,dpm++2m", help="evaluate: the teacher's solvers (none: skip it)"
    )
    p.add_argument(
        "--teacher-nfe", default=",".join(map(str, TEACHER_NFE)), help="evaluate: the teacher's step counts"
    )
    p.add_argument(
        "--only", default="", help="evaluate: these kinds only (teacher, progressive, consistency, GAN)"
    )
    p.add_argument("--batch", type=int, default=100, help="speed: images per timed batch")
    p.add_argument("--again", action="store_true", help="evaluate: re-score arms already scored")
    p.add_argument("--note", default="", help="speed: what else was running")
    args = p.parse_args()
    {
        "train": cmd_train,
        "train-gan": cmd_train_gan,
        "evaluate": cmd_evaluate,
        "speed": cmd_speed,
        "report": cmd_report,
    }[args.phase](args)


if __name__ == "__main__":
    main()
