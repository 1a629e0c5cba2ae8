"""Training-step throughput of the U-Net under each precision / memory-format setting.

Settings alternate within each repetition (the machine is shared and noisy); the table gives
min / median / max images per second and the ratio of medians to fp32 NCHW in the same run.
It is the measurement behind ``precision = "auto"``: bf16 is picked only where it is native.

    python benchmarks/train_throughput.py [--config fashion-mnist] [--repeats 5]

Writes benchmarks/results/train_throughput.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from ddpm.models import UNet, count_parameters
from ddpm.pipelines import load_experiment_config
from ddpm.runtime import autocast, bf16_is_fast

SETTINGS = [("fp32", False), ("fp32", True), ("bf16", False), ("bf16", True)]


def step_time(model, opt, x, t, precision, steps):
    device = torch.device("cpu")
    start = time.perf_counter()
    for _ in range(steps):
        with autocast(precision, device):
            loss = (model(x, t).float() - x).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="fashion-mnist")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per repetition")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "train_throughput"))
    args = parser.parse_args()
    config = load_experiment_config(args.config).model
    g = torch.Generator().manual_seed(0)
    x = torch.randn((args.batch_size, config.in_channels, config.image_size, config.image_size), generator=g)
    t = torch.randint(0, 1000, (args.batch_size,), generator=g)
    runs = {}
    for precision, channels_last in SETTINGS:
        torch.manual_seed(0)
        model = UNet(config)
        xx = x
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
            xx = x.contiguous(memory_format=torch.channels_last)
        opt = torch.optim.AdamW(model.parameters(), 1e-4)
        step_time(model, opt, xx, t, precision, 1)  # warm-up
        runs[(precision, channels_last)] = (model, opt, xx, [])
    for _ in range(args.repeats):
        for key, (model, opt, xx, times) in runs.items():
            times.append(args.batch_size / step_time(model, opt, xx, t, key[0], args.steps))
    base = statistics.median(runs[("fp32", False)][3])
    rows = []
    for (precision, channels_last), (*_, ips) in runs.items():
        rows.append(
            {
                "precision": precision,
                "channels_last": channels_last,
                "images_per_second_min": min(ips),
                "images_per_second_median": statistics.median(ips),
                "images_per_second_max": max(ips),
                "ratio_to_fp32_nchw": statistics.median(ips) / base,
            }
        )
    result = {
        "config": args.config,
        "parameters": count_parameters(UNet(config)),
        "batch_size": args.batch_size,
        "threads": torch.get_num_threads(),
        "bf16_native": bf16_is_fast(torch.device("cpu")),
        "torch": torch.__version__,
        "rows": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"U-Net of `{args.config}` ({result['parameters']:,} parameters), batch {args.batch_size}, "
        f"{result['threads']} threads, native bf16: {result['bf16_native']}.",
        "",
        "| precision | channels_last | images/s (min / median / max) | × fp32 NCHW |",
        "|---|---|---|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['precision']} | {r['channels_last']} | {r['images_per_second_min']:.1f} / "
            f"{r['images_per_second_median']:.1f} / {r['images_per_second_max']:.1f} | "
            f"{r['ratio_to_fp32_nchw']:.2f} |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
