"""Training-step throughput: our U-Net against diffusers' UNet2DModel of the same architecture
(identical parameter count), at equal precision and each at its best setting, plus the share of the
machine's measured matmul peak our step reaches.

Settings alternate within each repetition (the machine is shared and noisy); the table gives
min / median / max images per second and ratios of medians to diffusers fp32 in the same run. It is
also the measurement behind ``precision = "auto"``: bf16 is picked only where it is native.

    python benchmarks/train_throughput.py [--config fashion-mnist] [--repeats 5]

Writes results/train_throughput.{json,md}.
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


def make_step(model, peer: bool, precision: str, x, t):
    opt = torch.optim.AdamW(model.parameters(), 1e-4)
    device = torch.device("cpu")

    def step():
        with autocast(precision, device):
            out = model(x, t).sample if peer else model(x, t)
            loss = (out.float() - x).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def matmul_peak(dtype=torch.float32, n: int = 1024, reps: int = 10) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="fashion-mnist")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=3, help="timed steps per repetition")
    p.add_argument("--bf16", action="store_true", help="also time bf16 where it is not native")
    args = p.parse_args()
    warnings.simplefilter("ignore")
    c = load_experiment_config(args.config).model
    g = torch.Generator().manual_seed(0)
    x = torch.randn((args.batch_size, c.in_channels, c.image_size, c.image_size), generator=g)
    t = torch.randint(0, 1000, (args.batch_size,), generator=g)
    native_bf16 = bf16_is_fast(torch.device("cpu"))
    settings = [("ours", "fp32", False), ("ours", "fp32", True), ("diffusers", "fp32", False)]
    if native_bf16 or args.bf16:  # emulated bf16 is ~10× slower: measured on request only
        settings += [("ours", "bf16", False), ("diffusers", "bf16", False)]
    runs = {}
    for who, precision, cl in settings:
        torch.manual_seed(0)
        model = UNet(c) if who == "ours" else diffusers_twin(c)
        xx = x
        if cl:
            model, xx = (
                model.to(memory_format=torch.channels_last),
                x.contiguous(memory_format=torch.channels_last),
            )
        step = make_step(model, who == "diffusers", precision, xx, t)
        step()  # warm-up
        runs[(who, precision, cl)] = (step, [], sum(p.numel() for p in model.parameters()))
    for _ in range(args.repeats):
        for step, times, _ in runs.values():
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            times.append(args.batch_size * args.steps / (time.perf_counter() - start))
    base = statistics.median(runs[("diffusers", "fp32", False)][1])
    ours_model = UNet(c)
    with FlopCounterMode(display=False) as counter:
        ours_model(x, t).pow(2).mean().backward()
    flops_per_image = counter.get_total_flops() / args.batch_size
    peak = matmul_peak()
    best_fp32 = max(statistics.median(v[1]) for k, v in runs.items() if k[0] == "ours" and k[1] == "fp32")
    rows = [
        {
            "model": who,
            "precision": precision,
            "channels_last": cl,
            "parameters": n,
            "images_per_second": spread(ips),
            "ratio_to_diffusers_fp32": statistics.median(ips) / base,
        }
        for (who, precision, cl), (_, ips, n) in runs.items()
    ]
    result = {
        "config": args.config,
        "batch_size": args.batch_size,
        "threads": torch.get_num_threads(),
        "bf16_native": native_bf16,
        "torch": torch.__version__,
        "rows": rows,
        "flops_per_image": flops_per_image,
        "matmul_peak_flops": peak,
        "fraction_of_matmul_peak": best_fp32 * flops_per_image / peak,
    }
    lines = [
        f"U-Net of `{args.config}` ({count_parameters(ours_model):,} parameters; diffusers' twin "
        f"{rows[2]['parameters']:,}), batch {args.batch_size}, {result['threads']} threads, native bf16: "
        f"{native_bf16}. Our fp32 step reaches {result['fraction_of_matmul_peak']:.0%} of the measured fp32 "
        f"matmul peak ({peak / 1e9:.0f} GFLOP/s; {flops_per_image / 1e9:.2f} GFLOP per image).",
        "",
        "| model | precision | channels_last | images/s (min / median / max) | × diffusers fp32 |",
        "|---|---|---|---|---:|",
    ]
    for r in rows:
        s = r["images_per_second"]
        lines.append(
            f"| {r['model']} | {r['precision']} | {r['channels_last']} | "
            f"{s['min']:.1f} / {s['median']:.1f} / {s['max']:.1f} | {r['ratio_to_diffusers_fp32']:.2f} |"
        )
    write_results("train_throughput", result, lines)


if __name__ == "__main__":
    main()
