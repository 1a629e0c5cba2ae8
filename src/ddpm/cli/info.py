"""``ddpm info``: describe a checkpoint (configuration, training state, schedule)."""

from __future__ import annotations

import argparse
import json

from ddpm.configuration import to_dict
from ddpm.models import count_parameters
from ddpm.pipelines import load_model


def add_parser(sub) -> None:
    p = sub.add_parser(
        "info",
        help="describe a checkpoint",
        description="Print what a checkpoint holds: model size, training state, diffusion and sampler.",
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="checkpoint/run folder or pretrained name")
    p.add_argument("--json", action="store_true", help="print everything as JSON")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    loaded = load_model(args.checkpoint, device="cpu")
    state = loaded.meta.get("state", {})
    report = {
        "path": str(loaded.path),
        "kind": loaded.meta.get("kind"),
        "parameters": count_parameters(loaded.model),
        "step": state.get("step"),
        "images_seen": state.get("images_seen"),
        "training_minutes": round((state.get("elapsed_seconds") or 0) / 60, 1),
        "terminal_alpha_bar": loaded.schedule.terminal_alpha_bar,
        "config": to_dict(loaded.config),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    c = loaded.config
    print(f"checkpoint   {report['path']} ({report['kind']})")
    print(
        f"model        U-Net, {report['parameters']:,} parameters, {c.model.in_channels}×"
        f"{c.model.image_size}×{c.model.image_size}, "
        f"widths {c.model.base_channels}×{list(c.model.channel_mult)}, "
        f"attention at {list(c.model.attention_resolutions)}"
    )
    print(
        f"diffusion    {c.diffusion.schedule} schedule, T = {c.diffusion.num_timesteps}, predicts "
        f"{c.diffusion.prediction_type}, ᾱ_T = {report['terminal_alpha_bar']:.3g}"
    )
    print(
        f"training     step {report['step']}, {report['images_seen']} images, "
        f"{report['training_minutes']} min, "
        f"data {c.data.dataset}"
    )
    steps = c.sample.steps or c.diffusion.num_timesteps
    print(f"sampler      {c.sample.sampler}, {steps} steps ({c.sample.spacing}), clip x̂_0 {c.sample.clip_x0}")
    return 0
