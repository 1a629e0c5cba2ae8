"""``ddpm sample``: generate an image grid (and optionally a denoising animation)."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from ddpm.errors import UserError
from ddpm.imaging import enlarge, make_image_grid, save_animation, save_image
from ddpm.pipelines import generate, load_model, pretrained_names
from ddpm.samplers import SAMPLERS, SPACINGS


def add_parser(sub) -> None:
    names = ", ".join(pretrained_names()) or "none installed"
    p = sub.add_parser(
        "sample",
        help="generate images from a checkpoint",
        description=(
            "Generate images. CHECKPOINT is a checkpoint folder, a training-run folder (its newest "
            f"checkpoint) or a pretrained name ({names}). Sampler options default to the ones "
            "stored with the model."
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
    p.add_argument("--nrow", type=int, default=0, help="images per grid row (default: about √num)")
    p.add_argument(
        "--class",
        dest="classes",
        metavar="CLASSES",
        help="class-conditional models: names or indices, comma-separated, or 'all' (cycled over --num)",
    )
    p.add_argument(
        "--per-class",
        type=int,
        default=0,
        metavar="N",
        help="class-conditional models: N images of every class, one row per class (overrides --num)",
    )
    p.add_argument(
        "--prompt",
        action="append",
        metavar="TEXT",
        help="text-conditional models: a caption (repeat for several; cycled over --num)",
    )
    p.add_argument(
        "--guidance", type=float, help="classifier-free guidance scale: 0 unconditional, 1 conditional"
    )
    p.add_argument(
        "--scale", type=int, default=0, help="enlarge the grid ×scale (default: tiles of about 64 px)"
    )
    p.add_argument("--save-each", metavar="DIR", help="also write every image as DIR/NNNNN.png")
    p.add_argument("--gif", metavar="PATH", help="also write a denoising animation of the first images")
    p.add_argument("--gif-num", type=int, default=8, help="images in the animation (default: 8)")
    p.add_argument(
        "--sampler", choices=list(SAMPLERS), help="sampler, see 'ddpm samplers' (default: the model's)"
    )
    p.add_argument("--steps", type=int, help="network evaluations; 0 = all T (default: the model's)")
    p.add_argument(
        "--spacing",
        choices=("auto", *SPACINGS, "karras", "logsnr"),
        help="timesteps for steps < T; karras/logsnr only for ODE solvers (default: the model's)",
    )
    p.add_argument("--eta", type=float, help="DDIM stochasticity η (Euler-ancestral: 0 means 1)")
    p.add_argument("--order", type=int, help="UniPC order 1-3 (0 = 2)")
    p.add_argument(
        "--dynamic-threshold", type=float, help="Imagen dynamic thresholding percentile, e.g. 0.995"
    )
    p.add_argument(
        "--dpm-algorithm", choices=("dpmsolver++", "dpmsolver"), help="single-step DPM-Solver form"
    )
    p.add_argument("--final-level", choices=("zero", "sigma_min"), help="where ODE solvers stop")
    p.add_argument("--variance", choices=("beta", "beta_tilde"), help="ancestral σ_t²")
    clip = p.add_mutually_exclusive_group()
    clip.add_argument(
        "--clip", dest="clip_x0", action="store_true", default=None, help="clamp x̂_0 to [-1, 1]"
    )
    clip.add_argument("--no-clip", dest="clip_x0", action="store_false", help="do not clamp x̂_0")
    p.add_argument("--batch-size", type=int, default=64, help="images per network call (default: 64)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
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
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.num < 1 or args.batch_size < 1:
        raise UserError("--num and --batch-size must be ≥ 1")
    if Path(args.out).suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp", ".bmp"):
        raise UserError(f"--out {args.out} must end in .png, .jpg, .webp or .bmp")
    if args.gif and not args.gif.lower().endswith(".gif"):
        raise UserError(f"--gif {args.gif} must end in .gif")
    if args.cascade:
        return run_cascade(args)
    if not args.checkpoint:
        raise UserError("give a CHECKPOINT (or --cascade BASE SR)")
    loaded = load_model(args.checkpoint, device=args.device)
    labels, nrow, num = None, args.nrow or None, args.num
    if args.per_class:
        labels = loaded.parse_classes("all").repeat_interleave(args.per_class)
        nrow, num = args.per_class, len(labels)
    elif args.classes:
        labels = loaded.parse_classes(args.classes)
    model = loaded.config.model
    if args.guidance is not None and not (model.num_classes or model.context_dim):
        raise UserError("--guidance needs a conditional model; this one is unconditional")
    chosen = {
        k: getattr(args, k)
        for k in (
            "sampler",
            "steps",
            "spacing",
            "eta",
            "variance",
            "clip_x0",
            "order",
            "dynamic_threshold",
            "dpm_algorithm",
            "final_level",
        )
        if getattr(args, k) is not None
    }
    try:
        sampler = replace(loaded.config.sample, **chosen)
    except ValueError as err:
        raise UserError(str(err)) from None
    if sampler.steps > loaded.schedule.num_timesteps:
        raise UserError(f"--steps {sampler.steps} exceeds the model's T = {loaded.schedule.num_timesteps}")
    result = generate(
        loaded,
        num,
        class_labels=labels,
        prompts=args.prompt,
        guidance=args.guidance,
        seed=args.seed,
        sampler=sampler,
        batch_size=args.batch_size,
        precision=args.precision,
        compile=args.compile,
        animate=args.gif_num if args.gif else 0,
        progress=not args.no_progress,
    )
    size = loaded.config.model.image_size
    scale = args.scale or max(1, 64 // size)
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


def run_cascade(args: argparse.Namespace) -> int:
    """``ddpm sample --cascade BASE SR``: base samples super-resolved by the SR stage."""
    from ddpm.pipelines.cascade import generate_cascade

    if args.checkpoint:
        raise UserError("give either CHECKPOINT or --cascade BASE SR, not both")
    if args.gif:
        raise UserError("--gif is not available for cascades")
    base, sr = (load_model(path, device=args.device) for path in args.cascade)
    sr_sampler = replace(sr.config.sample, steps=args.steps) if args.steps is not None else None
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
    size = sr.config.model.image_size
    save_image(
        make_image_grid(high.images, nrow=args.nrow or None), args.out, scale=args.scale or max(1, 64 // size)
    )
    print(f"wrote {args.num} cascaded samples to {args.out}")
    return 0
