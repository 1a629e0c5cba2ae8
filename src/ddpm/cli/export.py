"""``ddpm export``: a small inference checkpoint (EMA weights + configuration) from a run."""

from __future__ import annotations

import argparse

from ddpm.checkpoints import refuse_writing_over_a_run
from ddpm.errors import UserError
from ddpm.pipelines import export_checkpoint, export_diffusers


def add_parser(sub) -> None:
    p = sub.add_parser(
        "export",
        help="write a small inference checkpoint, or a diffusers pipeline folder",
        description=(
            "Copy the EMA weights and configuration of a checkpoint into a small folder "
            "(an autoencoder: its weights, configuration and latent scale factor). With --format "
            "diffusers, write a folder that diffusers.DDPMPipeline.from_pretrained loads "
            "(model_index.json, unet/, scheduler/): unconditional and class-conditional pixel "
            "models. --out is never a training checkpoint, a run folder or inside a run's checkpoints/."
        ),
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="checkpoint or run folder")
    p.add_argument("--out", required=True, help="folder to write (outside any run's checkpoints/)")
    p.add_argument(
        "--format",
        default="ddpm",
        choices=("ddpm", "diffusers"),
        help="ddpm (default): our checkpoint folder; diffusers: a DDPMPipeline folder",
    )
    p.add_argument(
        "--dtype",
        default="float32",
        choices=("float32", "float16", "bfloat16"),
        help="storage type of the weights (default: float32; float16 halves the size)",
    )
    p.add_argument(
        "--weights",
        default="ema",
        choices=("ema", "model"),
        help="the EMA average (default) or the raw weights of the last step",
    )
    p.add_argument(
        "--autoencoder",
        help="latent models: record this name or path for their autoencoder (it must be the same weights)",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    refuse_writing_over_a_run(args.out)  # before loading anything: the answer does not depend on it
    if args.format == "diffusers":
        if args.autoencoder:
            raise UserError("--autoencoder applies to --format ddpm (latent models have no diffusers form)")
        path = export_diffusers(args.checkpoint, args.out, args.dtype, args.weights)
    else:
        path = export_checkpoint(args.checkpoint, args.out, args.dtype, args.weights, args.autoencoder)
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6
    print(f"wrote {path} ({size:.1f} MB)")
    return 0
