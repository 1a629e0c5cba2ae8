"""``ddpm restore``: restore a user's own image with an image-to-image model."""

from __future__ import annotations

import argparse

from ddpm.cli.checks import check_output_file, require_at_least
from ddpm.configuration import add_field_flags, replace_from_flags
from ddpm.data.degradations import TASKS
from ddpm.errors import UserError
from ddpm.imaging import make_image_grid, save_image
from ddpm.pipelines import load_model
from ddpm.pipelines.restoration import MASKED, condition_from_input, read_image, read_mask, restore
from ddpm.samplers import SamplerConfig


def add_parser(sub) -> None:
    p = sub.add_parser(
        "restore",
        help="restore an image: super-resolution, inpainting, uncropping, colourisation, JPEG",
        description=(
            "Restore IMAGE with a model trained on an image-to-image task (data.task). sr2/sr4 take the "
            "low-resolution image; inpainting takes the image and --mask (white = keep, black = fill); "
            "uncrop fills the right half unless --mask says otherwise; colorize takes any image; jpeg "
            "takes the compressed image. Known pixels are kept exactly."
        ),
    )
    p.add_argument(
        "checkpoint", metavar="CHECKPOINT", help="checkpoint/run folder of an image-to-image model"
    )
    p.add_argument("--input", required=True, help="the image to restore (PNG, JPEG, …)")
    p.add_argument("--mask", help="mask image for inpainting/uncropping: white = known, black = fill")
    p.add_argument("--task", choices=[t for t in TASKS if t != "none"], help="(default: the model's task)")
    p.add_argument("--out", required=True, help="restored image to write")
    p.add_argument("--samples", type=int, default=1, help="several restorations side by side (default: 1)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    add_field_flags(p, SamplerConfig, "sampler options (see 'ddpm samplers')", " (default: the model's)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    require_at_least("--samples", args.samples)
    check_output_file("--out", args.out)
    loaded = load_model(args.checkpoint, device=args.device)
    sampler = replace_from_flags(loaded.config.sample, args)
    trained = loaded.config.data.task
    if trained == "none":
        raise UserError("this model was not trained on an image-to-image task (data.task is none)")
    task = args.task or trained
    family = {t: ("masked" if t in MASKED else t) for t in TASKS}
    if family[task] != family[trained]:
        raise UserError(f"the model was trained for {trained}, not {task}")
    c = loaded.config.model
    image = read_image(args.input, c.in_channels, convert=task == "colorize")
    mask = read_mask(args.mask, c.image_size) if args.mask else None
    if mask is not None and task not in MASKED:
        raise UserError(f"--mask is for inpainting and uncropping, not {task}")
    y, mask = condition_from_input(task, image, c.image_size, mask)
    out = restore(loaded, y, mask, samples=args.samples, seed=args.seed, sampler=sampler)
    grid = out[:, 0] if args.samples > 1 else out[0]
    save_image(make_image_grid(grid, nrow=args.samples, padding=0 if args.samples == 1 else 2), args.out)
    print(f"wrote {args.out}")
    return 0
