"""``ddpm distill``: a few-step student from a trained model (progressive or consistency distillation)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ddpm.cli.checks import check_output_folder
from ddpm.configuration import add_override_arguments, from_dict, merge, overrides_from_args, to_dict
from ddpm.pipelines.distillation import distill
from ddpm.training.distillation import DistillSettings


def add_parser(sub) -> None:
    p = sub.add_parser(
        "distill",
        help="distil a model into a student that samples in a few steps",
        description=(
            "Progressive distillation (--distill.method progressive, Salimans & Ho 2022): starting "
            "from TEACHER's weights, a v-predicting student learns to take one deterministic DDIM "
            "step where the teacher takes two; each round (--distill.round_steps optimiser steps) "
            "halves the steps, from --distill.start_steps down to --distill.final_steps. "
            "Consistency distillation (--distill.method consistency, Song et al. 2023): a consistency "
            "function learns to map two adjacent points of the teacher's ODE trajectories (a Heun "
            "step apart, over --distill.levels Karras levels) to the same image, against an EMA "
            "target network; it samples in any number of steps. The run folder is like "
            "'ddpm train's (checkpoints/, samples/, log.jsonl; Ctrl-C saves, --resume continues, "
            "--train.time_limit_minutes stops and saves). The student samples with 'ddpm sample "
            "OUT' (progressive: the DDIM steps of its last round; consistency: --sampler consistency "
            "--steps K) and 'ddpm eval OUT' measures it."
        ),
    )
    p.add_argument("teacher", metavar="TEACHER", help="pretrained name, checkpoint or run folder to distil")
    p.add_argument("--out", required=True, help="run folder for the student")
    p.add_argument("--resume", action="store_true", help="continue the distillation in --out")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_override_arguments(p, DistillSettings, defaults=DistillSettings())
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    check_output_folder("--out", out)
    settings = from_dict(DistillSettings, merge(to_dict(DistillSettings()), overrides_from_args(args)))
    result = distill(
        args.teacher, out, settings.distill, settings.train, resume=args.resume, progress=not args.no_progress
    )
    d = settings.distill
    how = (
        f"its {d.student_steps(d.rounds - 1)}-step DDIM sampler"
        if d.method == "progressive"
        else (f"consistency sampling, {d.sample_steps} step(s) by default")
    )
    print(
        f"distilled to step {result.step} in {result.elapsed_seconds / 60:.1f} min "
        f"(last loss {result.loss:.4f}); checkpoint {result.checkpoint}\n"
        f"next: ddpm sample {out} --num 64 ({how})"
    )
    return 0
