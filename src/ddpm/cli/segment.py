"""``ddpm segment`` and ``ddpm segment-train``: part maps from diffusion features."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ddpm.checkpoints import read_meta
from ddpm.cli.checks import check_output_file, check_output_folder, parse_sizes, require_at_least
from ddpm.errors import UserError
from ddpm.pipelines.part_maps import part_map_picture
from ddpm.pipelines.restoration import read_image
from ddpm.pipelines.segmentation import (
    FeatureSpec,
    is_segmentation_head,
    load_segmenter,
)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "segment",
        help="colour-coded part map of an image, from the diffusion model's features",
        description=(
            "Segment the --input image into parts with a segmentation head: a small per-pixel MLP "
            "ensemble on the U-Net's activations at a few noise levels (Baranchuk et al. 2022). "
            "MODEL is a diffusion model with a head of its own (the pretrained 'faces' ships one, "
            "trained on 20 labelled "
            "faces), a head folder written by 'ddpm segment-train', or any model with --head."
        ),
    )
    p.add_argument("model", metavar="MODEL", help="pretrained name, checkpoint/run folder, or head folder")
    p.add_argument("--input", required=True, help="image to segment, at the model's size (PNG, JPEG, …)")
    p.add_argument("--out", required=True, help="picture to write: the part map with a legend")
    p.add_argument("--head", help="segmentation head folder (default: the model's own)")
    p.add_argument("--overlay", action="store_true", help="blend the part colours over the image")
    p.add_argument("--scale", type=int, default=8, help="enlarge the picture this many times (default: 8)")
    p.add_argument("--labels-out", help="also write the raw part ids as a greyscale PNG (value = part id)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.set_defaults(handler=run_segment)

    t = sub.add_parser(
        "segment-train",
        help="train a segmentation head on a model's features from a few labelled faces",
        description=(
            "Train a per-pixel MLP ensemble on MODEL's U-Net features of --labelled faces (with their "
            "part labels, from 'ddpm data faces'), score it on held-out faces (mIoU), and write the head "
            "to --out for 'ddpm segment'. The model must be unconditional and make faces-sized RGB images."
        ),
    )
    t.add_argument("model", metavar="MODEL", help="pretrained name or checkpoint/run folder")
    t.add_argument("--out", required=True, help="folder for the head (replaced only if it holds a head)")
    t.add_argument("--labelled", type=int, default=20, help="labelled training faces (default: 20)")
    t.add_argument(
        "--eval-num", type=int, default=300, help="held-out faces to score (default: 300; 0 = none)"
    )
    t.add_argument("--timesteps", default="50,150,250", help="noise levels t, 0 … T−1 (default: 50,150,250)")
    t.add_argument(
        "--blocks",
        default="",
        help="comma-separated U-Net blocks enc0…, mid0, mid1, dec0… (dec0 = deepest; 'ddpm info MODEL' lists "
        "them; default: the decoder blocks between the lowest and the highest resolution)",
    )
    t.add_argument("--draws", type=int, default=1, help="noise draws averaged per timestep (default: 1)")
    t.add_argument("--members", type=int, default=3, help="MLPs in the ensemble (default: 3)")
    t.add_argument("--steps", type=int, default=1000, help="optimiser steps per MLP (default: 1000)")
    t.add_argument("--balanced", action="store_true", help="weight parts by inverse pixel frequency")
    t.add_argument("--data-path", help="faces data folder (default: the 'ddpm data faces' cache)")
    t.add_argument(
        "--seed", type=int, default=0, help="seed of the labelled draw, noise and MLPs (default: 0)"
    )
    t.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    t.set_defaults(handler=run_train)


def run_segment(args: argparse.Namespace) -> int:
    require_at_least("--scale", args.scale)
    check_output_file("--out", args.out)
    if args.labels_out:
        check_output_file("--labels-out", args.labels_out)
    segmenter = load_segmenter(args.model, args.head, device=args.device)
    channels = segmenter.loaded.image_shape[0]
    image = read_image(args.input, channels)
    labels = segmenter(image)[0]
    picture = part_map_picture(image[0], labels, segmenter.head.parts, overlay=args.overlay, scale=args.scale)
    picture.save(args.out)
    if args.labels_out:
        from PIL import Image

        Image.fromarray(labels.byte().numpy()).save(args.labels_out)
    present = sorted(set(labels.reshape(-1).tolist()))
    print(f"wrote {args.out} ({', '.join(segmenter.head.parts[k] for k in present)})")
    return 0


def _parse_blocks(text: str) -> tuple[str, ...]:
    return tuple(b.strip() for b in text.split(",") if b.strip())


def run_train(args: argparse.Namespace) -> int:
    from ddpm.pipelines.segmentation_training import train_head_on_faces

    for flag, value, low in (
        ("--labelled", args.labelled, 1),
        ("--eval-num", args.eval_num, 0),
        ("--draws", args.draws, 1),
        ("--members", args.members, 1),
        ("--steps", args.steps, 1),
    ):
        require_at_least(flag, value, low)
    out = Path(args.out)
    check_output_folder("--out", out)
    holds_head = (out / "checkpoint.json").is_file() and is_segmentation_head(read_meta(out))
    if out.exists() and any(out.iterdir()) and not holds_head:
        raise UserError(f"{out} exists and is not a segmentation head; choose a new --out")
    spec = FeatureSpec(
        timesteps=parse_sizes("--timesteps", args.timesteps, low=0, high=100_000),
        blocks=_parse_blocks(args.blocks),
        draws=args.draws,
        seed=args.seed,
    )
    head = train_head_on_faces(
        args.model,
        spec,
        labelled=args.labelled,
        eval_num=args.eval_num,
        members=args.members,
        steps=args.steps,
        balanced=args.balanced,
        data_path=args.data_path,
        seed=args.seed,
        device=args.device,
    )
    head.save(out)
    if "test" in head.metrics:
        print(json.dumps(head.metrics["test"]["iou"], indent=None))
        print(f"held-out mIoU {head.metrics['test']['miou']:.3f} on {args.eval_num} faces")
    print(f"wrote {out}; segment with: ddpm segment {out} --input FACE.png --out parts.png")
    return 0
