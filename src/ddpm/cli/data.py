"""``ddpm data``: build the data sets that are made rather than downloaded."""

from __future__ import annotations

import argparse
from pathlib import Path

from ddpm.cli.checks import check_memory, check_output_folder, parse_sizes, require_at_least
from ddpm.data.emoji import build_emoji, default_emoji_dir
from ddpm.data.faces import STYLES, build_faces, default_faces_dir
from ddpm.errors import UserError


def add_parser(sub) -> None:
    p = sub.add_parser("data", help="build a data set offline", description="Build a data set offline.")
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)
    f = kinds.add_parser(
        "faces",
        help="cartoon faces with per-pixel part labels, drawn from DiceBear styles",
        description=(
            "Draw cartoon faces offline from the DiceBear style definitions of PyPI's dicebear-styles "
            "(rendered with cairosvg), with a per-pixel part-label map for each, and write "
            "faces-S.npz files and a README with every style's licence. Deterministic per seed."
        ),
    )
    f.add_argument("--num", type=int, default=20_000, help="number of faces (default: 20000)")
    f.add_argument("--out", default=str(default_faces_dir()), help="folder to write (default: %(default)s)")
    f.add_argument("--sizes", default="32,64", help="square sizes, comma-separated (default: 32,64)")
    f.add_argument(
        "--styles", default=",".join(STYLES), help="styles, comma-separated (default: %(default)s)"
    )
    f.add_argument("--seed", type=int, default=0, help="seed of the whole set (default: 0)")
    f.add_argument("--workers", type=int, default=0, help="processes; 0 = one per CPU (default: 0)")
    f.set_defaults(handler=run_faces)
    e = kinds.add_parser(
        "emoji",
        help="emoji images with their names as captions (npm emoji-datasource-google)",
        description=(
            "Fetch Google's Noto emoji (64 px PNGs, Apache-2.0) and their names from the npm package "
            "emoji-datasource-google with the machine's npm, and write emoji-S.npz (images on white, "
            "captions, categories) and a README."
        ),
    )
    e.add_argument("--out", default=str(default_emoji_dir()), help="folder to write (default: %(default)s)")
    e.add_argument("--source", help="an already unpacked emoji-datasource-google folder (skips npm)")
    e.add_argument("--sizes", default="32,64", help="square sizes, comma-separated (default: 32,64)")
    e.add_argument("--no-skin-tones", action="store_true", help="leave out the skin-tone variants")
    e.set_defaults(handler=run_emoji)


def run_faces(args: argparse.Namespace) -> int:
    require_at_least("--num", args.num)
    require_at_least("--workers", args.workers, 0)
    if not 0 <= args.seed < 2**31:
        raise UserError(f"--seed must be a whole number in [0, 2^31), got {args.seed}")
    sizes = parse_sizes("--sizes", args.sizes)
    styles = tuple(s for s in args.styles.split(",") if s)
    if not styles:
        raise UserError(f"--styles is empty; choose from {', '.join(STYLES)}")
    for style in styles:
        if style not in STYLES:
            raise UserError(f"unknown face style {style!r}; choose from {', '.join(STYLES)}")
    check_output_folder("--out", args.out)
    # every face at every size: RGB images and a part-label map, kept in memory until written
    nbytes = args.num * sum(4 * s * s for s in sizes)
    check_memory(f"--num {args.num} at sizes {args.sizes}", nbytes, "lower --num")
    out = build_faces(args.num, args.out, sizes, styles, args.seed, args.workers)
    print(f"wrote {args.num} faces to {out} (train on them with --data.dataset faces --data.path {out})")
    return 0


def run_emoji(args: argparse.Namespace) -> int:
    sizes = parse_sizes("--sizes", args.sizes)
    check_output_folder("--out", args.out)
    if args.source and not Path(args.source).is_dir():
        raise UserError(f"--source {args.source} is not a folder; give an unpacked emoji-datasource-google")
    out = build_emoji(args.out, args.source, sizes, not args.no_skin_tones)
    print(f"wrote the emoji set to {out} (train on it with --data.dataset emoji --data.path {out})")
    return 0
