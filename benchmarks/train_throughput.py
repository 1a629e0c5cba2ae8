"""Training-step throughput and memory: our U-Net against diffusers' UNet2DModel of the same
architecture (identical parameter count), at equal precision and each at its default / best
setting, plus the share of the device's measured matmul peak our step reaches.

Settings (model × precision × channels_last × torch.compile) alternate within each repetition (the
machine is shared and noisy); the table gives min / median / max images per second, ratios of
medians to diffusers at its default (fp32, eager, NCHW — what its training example runs), and
memory: on CUDA the peak allocated during a step, on a CPU the bytes autograd keeps for the backward
pass (counted with saved-tensor hooks; compiled graphs hide them). bf16 rows run where bf16 is
native (emulated bf16 is ~10× slower; ``--bf16`` forces them); compiled rows, at the native
precision, with ``--compile`` (their compile time is reported). It is also the measurement behind
``precision = "auto"`` and ``compile = "auto"``.

    python benchmarks/train_throughput.py [--config fashion-mnist] [--repeats 5] [--compile]
        [--device cpu|cuda]

Writes results/train_throughput{,_DEVICE}.{json,md} (no suffix for the CPU).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch
from common import spread, write_results
from torch.utils.flop_counter import FlopCounterMode

from ddpm.models import UNet, count_parameters
from ddpm.pipelines import load_experiment_config
from ddpm.runtime import autocast, bf16_is_fast


def diffusers_twin(c):
    """diffusers' UNet2DModel with our U-Net's widths, depth, attention and norm groups."""
    from diffusers import UNet2DModel

    down = [
        "AttnDownBlock2D" if c.image_size // 2**i in c.attention_resolutions else "DownBlock2D"
        for i in range(len(c.channel_mult))
    ]
    up = [b.replace("Down", "Up") for b in reversed(down)]
    return UNet2DModel(
        sample_size=c.image_size,
        in_channels=c.in_channels,
        out_channels=c.output_channels,
        block_out_channels=tuple(c.base_channels * m for m in c.channel_mult),
        layers_per_block=c.num_res_blocks,
        down_block_types=tuple(down),
        up_block_types=tuple(up),
        norm_num_groups=c.norm_groups,
        attention_head_dim=c.head_channels,
        dropout=c.dropout,
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_step(model, peer: bool, precision: str, x, t):
    """One optimiser step of a denoising-style loss (forward, backward, AdamW) on fixed inputs."""
    opt = torch.optim.AdamW(model.parameters(), 1e-4)

    def step():
        with autocast(precision, x.device):
            out = model(x, t).sample if peer else model(x, t)
            loss = (out.float() - x).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def step_memory_mb(model, peer: bool, precision: str, x, t) -> float | None:
    """Peak bytes allocated in one step on CUDA; on a CPU the bytes saved for backward (eager only)."""
    if x.device.type == "cuda":
        sync(x.device)
        torch.cuda.reset_peak_memory_stats(x.device)
        base = torch.cuda.memory_allocated(x.device)
        make_step(model, peer, precision, x, t)()
        sync(x.device)
        return (torch.cuda.max_memory_allocated(x.device) - base) / 2**20
    if isinstance(model, torch._dynamo.eval_frame.OptimizedModule):
        return None
    total = 0

    def pack(tensor):
        nonlocal total
        total += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor), autocast(precision, x.device):
        out = model(x, t).sample if peer else model(x, t)
        loss = (out.float() - x).pow(2).mean()
    loss.backward()
    model.zero_grad(set_to_none=True)
    return total / 2**20


def matmul_peak(device: torch.device, dtype=torch.float32, reps: int = 5) -> float:
    """The best FLOP/s of square matmuls (several sizes, best of ``reps``): the device's practical peak."""
    best = 0.0
    for n in (512, 1024, 2048) if device.type == "cpu" else (4096, 8192):
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        a @ b
        for _ in range(reps):
            sync(device)
            start = time.perf_counter()
            a @ b
            sync(device)
            best = max(best, 2 * n**3 / (time.perf_counter() - start))
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="fashion-mnist")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=3, help="timed steps per repetition")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--bf16", action="store_true", help="also time bf16 where it is not native")
    p.add_argument("--compile", action="store_true", help="also time torch.compile (slow to compile)")
    args = p.parse_args()
    warnings.simplefilter("ignore")
    device = torch.device(args.device)
    c = load_experiment_config(args.config).model
    g = torch.Generator().manual_seed(0)
    x = torch.randn((args.batch_size, c.in_channels, c.image_size, c.image_size), generator=g).to(device)
    t = torch.randint(0, 1000, (args.batch_size,), generator=g).to(device)
    native_bf16 = bf16_is_fast(device)
    # (model, precision, channels_last, compiled); the first diffusers row is its default
    settings = [
        ("diffusers", "fp32", False, False),
        ("ours", "fp32", False, False),
        ("ours", "fp32", True, False),
    ]
    if native_bf16 or args.bf16:
        settings += [("ours", "bf16", False, False), ("ours", "bf16", True, False)]
        settings += [("diffusers", "bf16", False, False)]
    if args.compile:  # at the faster precision only: compiling is slow
        best = "bf16" if native_bf16 else "fp32"
        settings += [("ours", best, False, True), ("diffusers", best, False, True)]
    runs, compile_seconds = {}, {}
    for who, precision, cl, comp in settings:
        torch.manual_seed(0)
        model = (UNet(c) if who == "ours" else diffusers_twin(c)).to(device)
        xx = x
        if cl:
            model, xx = (
                model.to(memory_format=torch.channels_last),
                x.contiguous(memory_format=torch.channels_last),
            )
        n_params = sum(q.numel() for q in model.parameters())
        net = torch.compile(model) if comp else model
        step = make_step(net, who == "diffusers", precision, xx, t)
        start = time.perf_counter()
        step()  # warm-up (and compilation)
        sync(device)
        if comp:
            compile_seconds[f"{who} {precision}"] = time.perf_counter() - start
        memory = step_memory_mb(net, who == "diffusers", precision, xx, t)
        runs[(who, precision, cl, comp)] = (step, [], n_params, memory)
        print(f"ready: {who} {precision} channels_last={cl} compile={comp}", flush=True)
    for _ in range(args.repeats):
        for step, times, _, _ in runs.values():
            sync(device)
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            sync(device)
            times.append(args.batch_size * args.steps / (time.perf_counter() - start))
    median = {k: statistics.median(v[1]) for k, v in runs.items()}
    base = median[settings[0]]
    ours_model = UNet(c).to(device)
    with FlopCounterMode(display=False) as counter:
        ours_model(x, t).pow(2).mean().backward()
    flops_per_image = counter.get_total_flops() / args.batch_size
    peak = {"fp32": matmul_peak(device)}
    if native_bf16:
        peak["bf16"] = matmul_peak(device, torch.bfloat16)
    rows = [
        {
            "model": who,
            "precision": precision,
            "channels_last": cl,
            "compiled": comp,
            "parameters": n,
            "images_per_second": spread(ips),
            "ratio_to_diffusers_default": median[(who, precision, cl, comp)] / base,
            "memory_mb": memory,
            "fraction_of_matmul_peak": median[(who, precision, cl, comp)] * flops_per_image / peak[precision]
            if precision in peak
            else None,
        }
        for (who, precision, cl, comp), (_, ips, n, memory) in runs.items()
    ]
    ours_best = max((r for r in rows if r["model"] == "ours"), key=lambda r: r["images_per_second"]["median"])
    theirs_best = max(
        (r for r in rows if r["model"] == "diffusers"), key=lambda r: r["images_per_second"]["median"]
    )
    equal = median[("ours", "fp32", False, False)] / base
    summary = {
        "equal_precision_ratio": equal,
        "ours_best_over_diffusers_default": ours_best["images_per_second"]["median"] / base,
        "ours_best_over_diffusers_best": ours_best["images_per_second"]["median"]
        / theirs_best["images_per_second"]["median"],
        "ours_best": {k: ours_best[k] for k in ("precision", "channels_last", "compiled")},
        "fraction_of_matmul_peak": ours_best["fraction_of_matmul_peak"],
    }
    result = {
        "config": args.config,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "batch_size": args.batch_size,
        "threads": torch.get_num_threads(),
        "bf16_native": native_bf16,
        "torch": torch.__version__,
        "rows": rows,
        "flops_per_image": flops_per_image,
        "matmul_peak_flops": peak,
        "compile_seconds": compile_seconds,
        **summary,
    }

    def mem(r):
        return "—" if r["memory_mb"] is None else f"{r['memory_mb']:.0f}"

    def frac(r):
        return "—" if r["fraction_of_matmul_peak"] is None else f"{r['fraction_of_matmul_peak']:.0%}"

    best = ", ".join(
        s
        for s in (
            ours_best["precision"],
            "channels_last" if ours_best["channels_last"] else "",
            "compiled" if ours_best["compiled"] else "",
        )
        if s
    )
    lines = [
        f"U-Net of `{args.config}` ({count_parameters(ours_model):,} parameters; diffusers' twin "
        f"{runs[settings[0]][2]:,}), batch {args.batch_size}, {result['device']}, "
        f"{result['threads']} threads, torch {torch.__version__}, native bf16: {native_bf16}. "
        f"{flops_per_image / 1e9:.2f} GFLOP per image (forward + backward, `torch.utils.flop_counter`); "
        f"measured matmul peak {peak['fp32'] / 1e9:.0f} GFLOP/s fp32"
        + (f", {peak['bf16'] / 1e9:.0f} bf16" if "bf16" in peak else "")
        + ".",
        "",
        f"- Equal precision (fp32, eager, NCHW): ours / diffusers = **{equal:.2f}×** (goal ≥ 1.0).",
        f"- Each at its default / best: ours at its best ({best}) / diffusers' default = "
        f"**{summary['ours_best_over_diffusers_default']:.2f}×** (goal ≥ 1.5); / diffusers' best row = "
        f"{summary['ours_best_over_diffusers_best']:.2f}×.",
        f"- Our best step reaches **{frac(ours_best)}** of the measured matmul peak at its precision "
        "(goal ≥ 60%).",
    ]
    if compile_seconds:
        lines.append(
            "- Compile time (first step): "
            + ", ".join(f"{k} {v:.0f} s" for k, v in compile_seconds.items())
            + "."
        )
    lines += [
        "",
        "| model | precision | channels_last | compiled | images/s (min / median / max) "
        "| × diffusers default | % of matmul peak | memory, MB |",
        "|---|---|---|---|---|---:|---:|---:|",
    ]
    for r in rows:
        s = r["images_per_second"]
        lines.append(
            f"| {r['model']} | {r['precision']} | {r['channels_last']} | {r['compiled']} | "
            f"{s['min']:.1f} / {s['median']:.1f} / {s['max']:.1f} | {r['ratio_to_diffusers_default']:.2f} | "
            f"{frac(r)} | {mem(r)} |"
        )
    lines.append("")
    lines.append(
        "Memory: "
        + ("peak allocated in one step." if device.type == "cuda" else "activations saved for backward.")
    )
    name = "train_throughput" if device.type == "cpu" else f"train_throughput_{device.type}"
    write_results(name, result, lines)


if __name__ == "__main__":
    main()
