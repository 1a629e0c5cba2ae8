"""``ddpm sample``: generate an image grid (and optionally a denoising animation)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from ddpm.checkpoints import read_meta
from ddpm.cli.checks import check_memory, check_output_file, check_output_folder, require_at_least
from ddpm.configuration import add_field_flags, field_flag_values, flag_name, replace_from_flags
from ddpm.errors import UserError
from ddpm.imaging import enlarge, make_image_grid, save_animation, save_image
from ddpm.pipelines import generate, load_model, pretrained_names
from ddpm.pipelines.baselines import is_baseline
from ddpm.pipelines.locate import resolve_checkpoint
from ddpm.samplers import SamplerConfig


def add_parser(sub) -> None:
    names = ", ".join(pretrained_names()) or "none installed"
    p = sub.add_parser(
        "sample",
        help="generate images from a checkpoint",
        description=(
            "Generate images. CHECKPOINT is a checkpoint folder, a training-run folder (its newest "
            f"checkpoint) or a pretrained name ({names}). Sampler options default to the ones "
            "stored with the model. A GAN, VAE or flow baseline (train.objective = baseline) draws "
            "each image in one network pass and takes no sampler options."
        ),
    )
    p.add_argument(
        "checkpoint", metavar="CHECKPOINT", nargs="?", help="checkpoint/run folder or pretrained name"
    )
    p.add_argument(
        "--cascade",
        nargs=2,
        metavar=("BASE", "SR"),
        help="cascaded generation: a low-resolution base model, then a super-resolution stage on its output",
    )
    p.add_argument(
        "--aug-level",
        type=float,
        help="cascade: noise level added to the base's upsampled images (default: half the SR training max)",
    )
    p.add_argument("--num", type=int, default=64, help="number of images (default: 64)")
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="random seed (default: 0); image i depends only on (seed, i), so --num 8 gives the first 8 "
        "images of --num 16, whatever --batch-size",
    )
    p.add_argument("--out", default="samples.png", help="image grid to write (default: samples.png)")
    p.add_argument("--nrow", type=int, help="images per grid row (default: about √num)")
    p.add_argument(
        "--class",
        dest="classes",
        metavar="CLASSES",
        help="class-conditional models: names or indices, comma-separated, or 'all' (cycled over --num)",
    )
    p.add_argument(
        "--per-class",
        type=int,
        metavar="N",
        help="class-conditional models: N images of every class, one row per class (overrides --num)",
    )
    p.add_argument(
        "--prompt",
        action="append",
        metavar="TEXT",
        help="text-conditional models: a caption (repeat for several; cycled over --num)",
    )
    p.add_argument("--scale", type=int, help="enlarge the grid ×scale (default: tiles of about 64 px)")
    p.add_argument("--save-each", metavar="DIR", help="also write every image as DIR/NNNNN.png")
    p.add_argument("--gif", metavar="PATH", help="also write a denoising animation of the first images")
    p.add_argument("--gif-num", type=int, default=8, help="images in the animation (default: 8)")
    p.add_argument("--batch-size", type=int, default=64, help="images per network call (default: 64)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument(
        "--autoencoder",
        help="latent models: where their autoencoder is now, if it moved (the same weights are required)",
    )
    p.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "fp32", "bf16"),
        help="bf16 autocast or fp32 (default: auto = bf16 where the hardware has native bf16)",
    )
    p.add_argument(
        "--compile",
        default="auto",
        choices=("auto", "on", "off"),
        help="torch.compile the network (default: auto = on CUDA only; on a CPU it costs about a "
        "minute of compiling for a small gain)",
    )
    p.add_argument(
        "--temperature",
        type=float,
        default=1.0,
        help="flow baselines: scale of the latent z (below 1 trades diversity for quality; default: 1)",
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    add_field_flags(
        p,
        SamplerConfig,
        "sampler options (see 'ddpm samplers'; a cascade applies them to its SR stage)",
        " (default: the model's)",
    )
    p.set_defaults(handler=run)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def check_arguments(args: argparse.Namespace) -> None:
    """Every size and path the model does not decide, before anything is loaded."""
    for flag, value in (
        ("--num", args.num),
        ("--batch-size", args.batch_size),
        ("--nrow", args.nrow),
        ("--scale", args.scale),
        ("--per-class", args.per_class),
        ("--gif-num", args.gif_num),
    ):
        require_at_least(flag, value)
    if not 0 <= args.seed < 2**32:
        raise UserError(f"--seed must be a whole number in [0, 2^32), got {args.seed}")
    if args.aug_level is not None and not 0 <= args.aug_level < 1:
        raise UserError(f"--aug-level must be a number in [0, 1), got {args.aug_level}")
    if Path(args.out).suffix.lower() not in IMAGE_SUFFIXES:
        raise UserError(f"--out {args.out} must end in .png, .jpg, .webp or .bmp")
    if args.gif and not args.gif.lower().endswith(".gif"):
        raise UserError(f"--gif {args.gif} must end in .gif")
    check_output_file("--out", args.out)
    if args.gif:
        check_output_file("--gif", args.gif)
    if args.save_each:
        check_output_folder("--save-each", args.save_each)


def check_sizes(num: int, channels: int, size: int, nrow: int | None, scale: int) -> None:
    """Refuse a --num or --scale whose images and grid would not fit in memory."""
    cols = nrow or max(1, math.ceil(math.sqrt(num)))
    rows = math.ceil(num / cols)
    grid = channels * (rows * (size + 2) + 2) * (cols * (size + 2) + 2) * scale**2
    images = 2 * 4 * num * channels * size * size  # float32, per batch and concatenated
    what = f"{num} samples of {size}×{size} in a grid ×{scale}"
    check_memory(what, images + 2 * grid, "lower --num (or --per-class) or --scale")


def run(args: argparse.Namespace) -> int:
    check_arguments(args)
    if args.cascade:
        return run_cascade(args)
    if not args.checkpoint:
        raise UserError("give a CHECKPOINT (or --cascade BASE SR)")
    if is_baseline(read_meta(resolve_checkpoint(args.checkpoint))):
        return run_baseline(args)
    if args.temperature != 1.0:
        raise UserError("--temperature applies to flow baselines; diffusion samplers take --eta, --steps …")
    loaded = load_model(args.checkpoint, device=args.device, autoencoder=args.autoencoder)
    labels, nrow, num = None, args.nrow, args.num
    classes = None
    if args.per_class or args.classes:
        classes = loaded.parse_classes("all" if args.per_class else args.classes)
    if args.per_class:
        nrow, num = args.per_class, len(classes) * args.per_class
    model = loaded.config.model
    channels, size, _ = loaded.image_shape
    scale = args.scale or max(1, 64 // size)
    check_sizes(num, channels, size, nrow, scale)
    if classes is not None:
        labels = classes.repeat_interleave(args.per_class) if args.per_class else classes
    if "guidance" in field_flag_values(args) and not (model.num_classes or model.context_dim):
        raise UserError("--guidance needs a conditional model; this one is unconditional")
    sampler = replace_from_flags(loaded.config.sample, args)
    if sampler.steps > loaded.schedule.num_timesteps:
        raise UserError(f"--steps {sampler.steps} exceeds the model's T = {loaded.schedule.num_timesteps}")
    result = generate(
        loaded,
        num,
        class_labels=labels,
        prompts=args.prompt,
        seed=args.seed,
        sampler=sampler,
        batch_size=args.batch_size,
        precision=args.precision,
        compile=args.compile,
        animate=args.gif_num if args.gif else 0,
        progress=not args.no_progress,
    )
    save_image(make_image_grid(result.images, nrow=nrow), args.out, scale=scale)
    print(f"wrote {num} samples to {args.out}")
    if args.save_each:
        for i, image in enumerate(result.images):
            save_image(make_image_grid(image[None], padding=0), Path(args.save_each) / f"{i:05d}.png")
        print(f"wrote {num} images to {args.save_each}/")
    if args.gif:
        frames = [enlarge(f, max(1, 128 // size)) for f in result.frames]
        save_animation(frames, args.gif)
        print(f"wrote the denoising animation to {args.gif}")
    return 0


def run_baseline(args: argparse.Namespace) -> int:
    """``ddpm sample`` of a GAN, VAE or flow: one network pass per image."""
    from ddpm.pipelines.baselines import FAMILY_NAMES, generate_baseline, load_baseline

    loaded = load_baseline(args.checkpoint, device=args.device)
    what = f"a {FAMILY_NAMES[loaded.family]} baseline"
    diffusion_only = {
        "--class": args.classes,
        "--per-class": args.per_class,
        "--prompt": args.prompt,
        "--gif": args.gif,
        "--autoencoder": args.autoencoder,
        **{flag_name(k, SamplerConfig): v for k, v in field_flag_values(args).items()},
    }
    given = [flag for flag, value in diffusion_only.items() if value is not None]
    if given:
        raise UserError(f"{', '.join(given)} apply to diffusion models; {args.checkpoint} is {what}")
    channels, size, _ = loaded.image_shape
    scale = args.scale or max(1, 64 // size)
    check_sizes(args.num, channels, size, args.nrow, scale)
    images = generate_baseline(
        loaded, args.num, args.seed, args.batch_size, args.temperature, progress=not args.no_progress
    )
    save_image(make_image_grid(images, nrow=args.nrow), args.out, scale=scale)
    print(f"wrote {args.num} samples of {what} to {args.out}")
    if args.save_each:
        for i, image in enumerate(images):
            save_image(make_image_grid(image[None], padding=0), Path(args.save_each) / f"{i:05d}.png")
        print(f"wrote {args.num} images to {args.save_each}/")
    return 0


def run_cascade(args: argparse.Namespace) -> int:
    """``ddpm sample --cascade BASE SR``: base samples super-resolved by the SR stage."""
    from ddpm.pipelines.cascade import generate_cascade

    if args.checkpoint:
        raise UserError("give either CHECKPOINT or --cascade BASE SR, not both")
    if args.gif:
        raise UserError("--gif is not available for cascades")
    base, sr = (load_model(path, device=args.device) for path in args.cascade)
    size = sr.config.model.image_size
    scale = args.scale or max(1, 64 // size)
    check_sizes(args.num, sr.config.model.in_channels, size, args.nrow, scale)
    sr_sampler = replace_from_flags(sr.config.sample, args)
    high, low = generate_cascade(
        base,
        sr,
        args.num,
        seed=args.seed,
        aug_level=args.aug_level,
        sr_sampler=sr_sampler,
        batch_size=args.batch_size,
        progress=not args.no_progress,
    )
    save_image(make_image_grid(high.images, nrow=args.nrow), args.out, scale=scale)
    print(f"wrote {args.num} cascaded samples to {args.out}")
    return 0
