"""The fast-path switches, each measured on and off in one run: one network call of a sampler step
(the U-Net of ``--config`` on a batch) under fp32 / bf16 autocast, channels_last, torch.compile,
the attention kernel (fused scaled-dot-product vs the plain math path) and thread counts; plus
the memory gradient checkpointing saves in a training step (bytes the autograd graph keeps for
the backward pass, counted with saved-tensor hooks, and the step's time); and sampling end to end
with the pretrained model's weights stored NCHW or channels_last.

Settings alternate within each repetition; the table gives min / median / max images per second and
the ratio of medians to the plain fp32 setting. bf16 is measured only where it is native (emulated
bf16 is many times slower) unless ``--bf16``; compile only with ``--compile`` (its compile time is
reported separately).

    python benchmarks/cpu_fast_path.py [--config fashion-mnist] [--batch-size 64] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch
from common import spread, timed, write_results
from torch.nn.attention import SDPBackend, sdpa_kernel

from ddpm.models import UNet
from ddpm.pipelines import generate, load_experiment_config, load_model
from ddpm.runtime import autocast, bf16_is_fast
from ddpm.samplers import SamplerConfig


def inference_call(model, x, t, precision: str, math_attention: bool):
    device = torch.device("cpu")

    @torch.no_grad()
    def call():
        with autocast(precision, device):
            if math_attention:
                with sdpa_kernel(SDPBackend.MATH):
                    return model(x, t)
            return model(x, t)

    return call


def saved_bytes_and_seconds(model, x, t) -> tuple[int, float]:
    """Bytes of tensors autograd saves for backward in one loss evaluation, and one step's seconds."""
    total = 0

    def pack(tensor):
        nonlocal total
        total += tensor.numel() * tensor.element_size()
        return tensor

    start = time.perf_counter()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = model(x, t).pow(2).mean()
    loss.backward()
    return total, time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="fashion-mnist")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--calls", type=int, default=3, help="timed calls per repetition")
    p.add_argument("--bf16", action="store_true", help="also time bf16 where it is not native")
    p.add_argument("--compile", action="store_true", help="also time torch.compile (slow to compile)")
    p.add_argument("--pretrained", default="fashion-mnist", help="model sampled end to end")
    p.add_argument("--sample-steps", type=int, default=10)
    args = p.parse_args()
    warnings.simplefilter("ignore")
    c = load_experiment_config(args.config).model
    g = torch.Generator().manual_seed(0)
    x = torch.randn((args.batch_size, c.in_channels, c.image_size, c.image_size), generator=g)
    t = torch.randint(0, 1000, (args.batch_size,), generator=g)
    torch.manual_seed(0)
    model = UNet(c).eval()
    model_cl = UNet(c).eval().to(memory_format=torch.channels_last)
    model_cl.load_state_dict(model.state_dict())
    x_cl = x.contiguous(memory_format=torch.channels_last)
    native_bf16 = bf16_is_fast(torch.device("cpu"))
    threads = torch.get_num_threads()

    settings = {
        "fp32": inference_call(model, x, t, "fp32", False),
        "fp32, math attention": inference_call(model, x, t, "fp32", True),
        "fp32, channels_last": inference_call(model_cl, x_cl, t, "fp32", False),
    }
    if native_bf16 or args.bf16:
        settings["bf16 autocast"] = inference_call(model, x, t, "bf16", False)
        settings["bf16 autocast, channels_last"] = inference_call(model_cl, x_cl, t, "bf16", False)
    compile_seconds = None
    if args.compile:
        compiled = torch.compile(model)
        start = time.perf_counter()
        inference_call(compiled, x, t, "fp32", False)()
        compile_seconds = time.perf_counter() - start
        settings["fp32, torch.compile"] = inference_call(compiled, x, t, "fp32", False)
    for call in settings.values():
        call()  # warm-up
    times = {name: [] for name in settings}
    thread_counts = sorted({1, threads})
    thread_times = {n: [] for n in thread_counts}
    for _ in range(args.repeats):
        for name, call in settings.items():
            start = time.perf_counter()
            for _ in range(args.calls):
                call()
            times[name].append(args.batch_size * args.calls / (time.perf_counter() - start))
        for n in thread_counts:
            torch.set_num_threads(n)
            start = time.perf_counter()
            for _ in range(args.calls):
                settings["fp32"]()
            thread_times[n].append(args.batch_size * args.calls / (time.perf_counter() - start))
        torch.set_num_threads(threads)
    base = statistics.median(times["fp32"])
    rows = [
        {"setting": name, "images_per_second": spread(v), "ratio": statistics.median(v) / base}
        for name, v in times.items()
    ]
    rows += [
        {
            "setting": f"fp32, {n} thread{'s' if n > 1 else ''}",
            "images_per_second": spread(v),
            "ratio": statistics.median(v) / statistics.median(thread_times[threads]),
        }
        for n, v in thread_times.items()
    ]

    # end to end: generate() with the pretrained model stored NCHW and channels_last
    sampler = SamplerConfig(sampler="dpm++2m", steps=args.sample_steps)
    loaded = {cl: load_model(args.pretrained, device="cpu", channels_last=cl) for cl in (False, True)}
    sampling = {False: [], True: []}
    for _ in range(args.repeats):
        for cl, lm in loaded.items():
            sampling[cl].append(timed(generate, lm, args.batch_size, sampler=sampler, progress=False)[1])
    sampling_row = {
        str(cl): {"seconds": spread(v), "speedup": statistics.median(sampling[False]) / statistics.median(v)}
        for cl, v in sampling.items()
    }

    train_model = UNet(c).train()
    memory = {}
    for checkpointing in (False, True, False, True):
        train_model.gradient_checkpointing = checkpointing
        saved, seconds = saved_bytes_and_seconds(train_model, x, t)
        memory.setdefault(checkpointing, []).append((saved, seconds))
    ckpt = {
        str(k): {"saved_mb": v[-1][0] / 2**20, "step_seconds": min(s for _, s in v)}
        for k, v in memory.items()
    }
    lines = [
        f"U-Net of `{args.config}`, one network call on a batch of {args.batch_size}, {threads} threads, "
        f"native bf16: {native_bf16}, torch {torch.__version__}."
        + (f" torch.compile took {compile_seconds:.0f} s to compile." if compile_seconds else ""),
        "",
        "| setting | images/s (min / median / max) | × plain fp32 |",
        "|---|---|---:|",
        *(
            f"| {r['setting']} | {r['images_per_second']['min']:.0f} / {r['images_per_second']['median']:.0f}"
            f" / {r['images_per_second']['max']:.0f} | {r['ratio']:.2f} |"
            for r in rows
        ),
        "",
        f"Sampling {args.batch_size} images from `{args.pretrained}` (DPM-Solver++(2M), {args.sample_steps} "
        f"steps, `generate`): {sampling_row['False']['seconds']['median']:.1f} s with NCHW weights, "
        f"{sampling_row['True']['seconds']['median']:.1f} s with channels_last "
        f"(× {sampling_row['True']['speedup']:.2f}; the CPU default of `load_model`).",
        "",
        f"Gradient checkpointing, one training step at batch {args.batch_size}: activations kept for the "
        f"backward pass {ckpt['False']['saved_mb']:.0f} MB off, {ckpt['True']['saved_mb']:.0f} MB on; "
        f"step {ckpt['False']['step_seconds']:.2f} s off, {ckpt['True']['step_seconds']:.2f} s on.",
    ]
    write_results(
        "cpu_fast_path",
        {
            "config": args.config,
            "batch_size": args.batch_size,
            "threads": threads,
            "bf16_native": native_bf16,
            "torch": torch.__version__,
            "compile_seconds": compile_seconds,
            "rows": rows,
            "sampling_channels_last": sampling_row,
            "gradient_checkpointing": ckpt,
        },
        lines,
    )


if __name__ == "__main__":
    main()
