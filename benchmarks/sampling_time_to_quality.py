"""Time to quality in sampling: wall-clock seconds for 1,000 samples from the same network, our
fast samplers against diffusers' ``DDPMPipeline`` at its default 1,000 steps.

The network is the pretrained ``fashion-mnist`` U-Net for both (wrapped so the pipeline can call
it). Our samplers draw all ``--num`` images and are scored by the domain FD against test images.
The pipeline's time is measured at ``--probe-steps`` and twice that (alternating, repeated) and
extrapolated to 1,000 steps on the fitted per-step cost, which is what its loop is: one network
call and one scheduler step per timestep. Its quality is that of 1,000-step ancestral sampling,
which our ``ancestral`` sampler reproduces to 1e-10 (tests/test_solver_parity.py) and
``sampler_nfe.py`` scored (results/sampler_nfe.json). Each side runs at its defaults: the pipeline
eager in fp32, ours with ``generate``'s automatic precision and compilation (on CUDA: bf16 and
torch.compile, compiled in an untimed warm-up run). Writes
results/sampling_time_to_quality{,_DEVICE}.{json,md} (no suffix for the CPU).

    python benchmarks/sampling_time_to_quality.py [--num 1000] [--batch-size 100] [--repeats 3]
        [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import replace
from types import SimpleNamespace

import torch
from common import RESULTS, DomainProbe, spread, timed, write_results

from ddpm.pipelines import generate, load_model
from ddpm.samplers import SamplerConfig

OURS = (("sde-dpm++2m", 20), ("unipc-bh1", 10), ("sde-dpm++2m", 50))


class AsDiffusersUNet(torch.nn.Module):
    """Our U-Net behind the small interface ``DDPMPipeline`` calls: ``.config``, ``.dtype``,
    ``.device`` and ``unet(x, t).sample`` with a scalar timestep."""

    def __init__(self, model: torch.nn.Module, image_size: int, in_channels: int):
        super().__init__()
        self.model = model
        self.config = SimpleNamespace(sample_size=image_size, in_channels=in_channels)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def forward(self, x: torch.Tensor, t) -> SimpleNamespace:
        return SimpleNamespace(sample=self.model(x, torch.full((x.shape[0],), int(t), device=x.device)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="fashion-mnist")
    p.add_argument("--num", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--probe-steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    args = p.parse_args()

    from diffusers import DDPMPipeline, DDPMScheduler

    loaded = load_model(args.checkpoint, device=args.device)
    c, d = loaded.config.model, loaded.config.diffusion
    pipe = DDPMPipeline(
        unet=AsDiffusersUNet(loaded.model, c.image_size, c.in_channels),
        scheduler=DDPMScheduler(
            num_train_timesteps=d.num_timesteps,
            beta_start=d.beta_start,
            beta_end=d.beta_end,
            beta_schedule="linear",
        ),
    )
    pipe.set_progress_bar_config(disable=True)
    batches = -(-args.num // args.batch_size)

    def pipeline_batch(steps: int) -> float:
        g = torch.Generator().manual_seed(0)
        run = dict(batch_size=args.batch_size, num_inference_steps=steps, generator=g, output_type="pt")
        return timed(pipe, **run)[1]  # its output is copied to the host: the timing includes the sync

    pipeline_batch(2)  # warm-up
    short, long = args.probe_steps, 2 * args.probe_steps
    times = {short: [], long: []}
    for _ in range(args.repeats):
        for steps in (short, long):
            times[steps].append(pipeline_batch(steps))
    per_step = (statistics.median(times[long]) - statistics.median(times[short])) / (long - short)
    fixed = statistics.median(times[short]) - short * per_step
    pipeline_seconds = batches * (fixed + 1000 * per_step)

    baseline_fd = None
    nfe_path = RESULTS / "sampler_nfe.json"
    if nfe_path.is_file():
        for row in json.loads(nfe_path.read_text())["rows"]:
            if row["sampler"] == "ancestral" and row["nfe"] == 1000:
                baseline_fd = row["domain_fd"]
    probe = DomainProbe(args.num)
    rows = []
    for name, steps in OURS:
        sampler = SamplerConfig(sampler=name, steps=steps, spacing="auto")
        if args.device != "cpu":  # compile (where automatic) outside the timed runs
            generate(loaded, args.batch_size, sampler=replace(sampler, steps=2), progress=False)
        runs = []
        for _ in range(args.repeats if steps <= 20 else 1):
            out, seconds = timed(
                generate,
                loaded,
                args.num,
                seed=0,
                sampler=sampler,
                batch_size=args.batch_size,
                progress=False,
            )
            runs.append(seconds)
        fd = probe(out.images)["domain_fd"]
        rows.append(
            {
                "sampler": name,
                "nfe": steps,
                "seconds": spread(runs),
                "domain_fd": fd,
                "within_10_percent": baseline_fd is not None and fd <= 1.1 * baseline_fd,
                "speedup": pipeline_seconds / statistics.median(runs),
            }
        )
        print(f"{name} {steps}: {statistics.median(runs):.1f} s, FD {fd:.2f}", flush=True)

    where = (
        torch.cuda.get_device_name(args.device)
        if args.device.startswith("cuda")
        else f"{torch.get_num_threads()} threads"
    )
    lines = [
        f"{args.num} samples of `{args.checkpoint}` at batch {args.batch_size}, {where}. "
        f"DDPMPipeline (1000 steps): {pipeline_seconds:.0f} s, extrapolated from "
        f"{args.repeats}× {short}- and {long}-step runs ({per_step * 1e3:.0f} ms per step per batch); "
        f"its quality, 1000-step ancestral sampling: domain FD {baseline_fd}.",
        "",
        "| ours | NFE | seconds (min / median / max) | domain FD | within 10% of 1000-step "
        "| × faster than DDPMPipeline |",
        "|---|---:|---:|---:|---|---:|",
        *(
            f"| {r['sampler']} | {r['nfe']} | {r['seconds']['min']:.1f} / {r['seconds']['median']:.1f} / "
            f"{r['seconds']['max']:.1f} | {r['domain_fd']:.2f} | "
            f"{'yes' if r['within_10_percent'] else 'no'} | {r['speedup']:.0f} |"
            for r in rows
        ),
    ]
    write_results(
        "sampling_time_to_quality" + ("" if args.device == "cpu" else "_" + args.device.split(":")[0]),
        {
            "checkpoint": args.checkpoint,
            "device": where,
            "num": args.num,
            "batch_size": args.batch_size,
            "threads": torch.get_num_threads(),
            "pipeline": {
                "probe_seconds": {str(k): v for k, v in times.items()},
                "seconds_per_step_per_batch": per_step,
                "fixed_seconds_per_batch": fixed,
                "extrapolated_seconds_1000_steps": pipeline_seconds,
                "domain_fd_1000_step_ancestral": baseline_fd,
            },
            "rows": rows,
        },
        lines,
    )


if __name__ == "__main__":
    main()
