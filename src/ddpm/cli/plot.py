"""``ddpm plot``: a run's training curves (loss, learning rate, gradient norm, …) as one PNG."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from ddpm.cli.checks import check_output_file
from ddpm.errors import UserError
from ddpm.fileio import atomic_write
from ddpm.training.run_log import read_log

# the panels every diffusion run has, in this order; any other numeric series gets a panel after them
STANDARD = ("loss", "lr", "grad_norm", "images_per_second")
LABELS = {
    "loss": "loss",
    "lr": "learning rate",
    "grad_norm": "gradient norm (before clipping)",
    "images_per_second": "images / s",
    "d_loss": "discriminator loss",
}
NOT_PLOTTED = ("elapsed_seconds",)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "plot",
        help="plot a run's training curves",
        description=(
            "Draw the curves of a training run's log.jsonl against step: loss (raw and smoothed, "
            "log scale), learning rate, gradient norm, throughput, and any other number the run "
            "logs (a GAN's discriminator loss, say). Steps that a resumed run logged twice count "
            "once (the later record). Needs matplotlib (pip install 'ddpm-toolkit[plot]')."
        ),
    )
    p.add_argument("run", metavar="RUN", help="a training-run folder (or its log.jsonl)")
    p.add_argument("--out", help="PNG to write (default: RUN/curves.png)")
    p.add_argument(
        "--smooth",
        type=float,
        default=None,
        help="EMA factor of the smoothed loss in [0, 1), 0 = none (default: 1 − 20/points, "
        "an average over about 5%% of the run)",
    )
    p.set_defaults(handler=run)


def smoothed(values: list[float], factor: float) -> list[float]:
    """Exponential moving average, debiased as in Adam: s_k = (1 − f) Σ f^(k−i) v_i / (1 − f^(k+1))."""
    out, acc = [], 0.0
    for k, v in enumerate(values):
        acc = factor * acc + (1 - factor) * v
        out.append(acc / (1 - factor ** (k + 1)) if factor > 0 else v)
    return out


def run(args: argparse.Namespace) -> int:
    source = Path(args.run)
    log = source if source.is_file() else source / "log.jsonl"
    if not log.is_file():
        raise UserError(f"{source} has no log.jsonl; give a training-run folder")
    if args.smooth is not None and not 0 <= args.smooth < 1:
        raise UserError(f"--smooth must be in [0, 1), got {args.smooth}")
    out = Path(args.out) if args.out else log.parent / "curves.png"
    check_output_file("--out", out)
    series = {k: v for k, v in read_log(log).items() if k not in NOT_PLOTTED and v}
    if not series:
        raise UserError(f"{log} holds no logged steps yet; plot again once the run has logged")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError("ddpm plot needs matplotlib: pip install 'ddpm-toolkit[plot]'") from None
    keys = [k for k in STANDARD if k in series] + sorted(k for k in series if k not in STANDARD)
    cols = 2
    rows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(10, 3.2 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys, strict=False):
        steps, values = zip(*series[key], strict=True)
        factor = args.smooth if args.smooth is not None else max(0.0, 1 - 20 / len(values))
        if key.endswith("loss") and factor > 0:
            ax.plot(steps, values, color="tab:blue", alpha=0.3, lw=1, label="logged")
            ax.plot(steps, smoothed(list(values), factor), color="tab:blue", lw=1.5, label="smoothed")
            ax.legend(fontsize=8)
        else:
            ax.plot(steps, values, color="tab:blue", lw=1.5)
        if key.endswith("loss") and min(values) > 0:
            ax.set_yscale("log")
        ax.set(title=LABELS.get(key, key.replace("_", " ")), xlabel="step")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    last = max(s for points in series.values() for s, _ in points)
    fig.suptitle(f"{log.parent.name}: {last} steps", fontsize=11)
    fig.tight_layout()
    atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    print(f"wrote {out} ({', '.join(keys)})")
    return 0
