"""Per-step overhead of each sampler (everything but the network), ours vs diffusers' scheduler loop.

A near-free stand-in network (one multiply) makes the loop's own cost visible. Both loops run on the
same (64, 1, 32, 32) float32 tensors for the same number of steps, alternating ours/theirs over
repetitions; the table gives median microseconds per step and the ratio ours/theirs (< 1: ours is
cheaper). Writes results/sampler_overhead.{json,md}.

    python benchmarks/sampler_overhead.py [--steps 50] [--repeats 5]
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import warnings

import torch
from common import spread, timed, write_results
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    DPMSolverSinglestepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    UniPCMultistepScheduler,
)

from ddpm.samplers import SamplerConfig, sample
from ddpm.schedules import ScheduleConfig, make_schedule

PEERS = {
    "ancestral": (DDPMScheduler, {}),
    "ddim": (DDIMScheduler, {}),
    "dpm++2m": (DPMSolverMultistepScheduler, {"solver_order": 2}),
    "dpm++3m": (DPMSolverMultistepScheduler, {"solver_order": 3}),
    "sde-dpm++2m": (DPMSolverMultistepScheduler, {"algorithm_type": "sde-dpmsolver++"}),
    "dpm-solver-2": (DPMSolverSinglestepScheduler, {"solver_order": 2}),
    "unipc-bh2": (UniPCMultistepScheduler, {"solver_type": "bh2"}),
    "euler": (EulerDiscreteScheduler, {"use_karras_sigmas": True}),
    "euler-a": (EulerAncestralDiscreteScheduler, {}),
    "heun": (HeunDiscreteScheduler, {"use_karras_sigmas": True}),
}


def network(x, t):
    return x * 0.1


def ours(name, schedule, x, steps):
    config = SamplerConfig(sampler=name, steps=steps, clip_x0=False)
    return sample(config, network, x, schedule, "eps", generator=torch.Generator().manual_seed(0))


def theirs(name, x, steps):
    cls, kwargs = PEERS[name]
    extra = {} if cls in (DPMSolverSinglestepScheduler,) else {"timestep_spacing": "trailing"}
    sched = cls(num_train_timesteps=1000, **kwargs, **extra)
    if hasattr(sched.config, "clip_sample"):
        sched.register_to_config(clip_sample=False)
    sched.set_timesteps(steps)
    g = torch.Generator().manual_seed(0)
    x = x * sched.init_noise_sigma
    kwargs = {"generator": g} if "generator" in inspect.signature(sched.step).parameters else {}
    for t in sched.timesteps:
        out = network(sched.scale_model_input(x, t), t)
        x = sched.step(out, t, x, **kwargs).prev_sample
    return x


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    schedule = make_schedule(ScheduleConfig(schedule="linear", num_timesteps=1000))
    x = torch.randn(64, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    rows = []
    for name in PEERS:
        evals = 2 * args.steps - 1 if name == "heun" else args.steps
        mine, peer = [], []
        for _ in range(args.repeats):
            mine.append(timed(ours, name, schedule, x, args.steps)[1] / evals * 1e6)
            peer.append(timed(theirs, name, x, args.steps)[1] / evals * 1e6)
        rows.append(
            {
                "sampler": name,
                "ours_us_per_step": spread(mine),
                "diffusers_us_per_step": spread(peer),
                "ratio": statistics.median(mine) / statistics.median(peer),
            }
        )
    lines = [
        f"Sampler overhead per network evaluation (µs; stand-in network, batch 64×1×32×32, "
        f"{args.steps} steps, 1 thread, {args.repeats} alternating repetitions; median [min–max]).",
        "",
        "| sampler | ours | diffusers | ours / diffusers |",
        "|---|---:|---:|---:|",
    ]
    for r in rows:
        o, d = r["ours_us_per_step"], r["diffusers_us_per_step"]
        lines.append(
            f"| {r['sampler']} | {o['median']:.0f} [{o['min']:.0f}–{o['max']:.0f}] | "
            f"{d['median']:.0f} [{d['min']:.0f}–{d['max']:.0f}] | {r['ratio']:.2f} |"
        )
    write_results("sampler_overhead", {"steps": args.steps, "rows": rows}, lines)


if __name__ == "__main__":
    main()
