"""``ddpm serve``: the web page (sample with a live view of the denoising; restore an image)."""

from __future__ import annotations

import argparse

from ddpm.errors import UserError


def add_parser(sub) -> None:
    p = sub.add_parser(
        "serve",
        help="start the web page",
        description=(
            "Serve a page to sample any model (pretrained name or run folder), watching the denoising "
            "live, and to restore uploaded images with image-to-image models. Listens on 127.0.0.1 "
            "only unless --host says otherwise; one sampling runs at a time and the others queue. "
            "Needs gradio (pip install 'ddpm-toolkit[serve]')."
        ),
    )
    p.add_argument("--port", type=int, default=7860, help="port to listen on (default: 7860)")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0 opens it to the network)",
    )
    p.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME_OR_PATH",
        help="a model to offer first (repeatable); the pretrained models are always offered",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.port <= 65535:
        raise UserError(f"--port must be 1–65535, got {args.port}")
    try:
        import gradio  # noqa: F401 — the page is built with it

        from ddpm.serve.app import serve
    except ImportError as err:
        raise UserError(f"ddpm serve needs gradio ({err}): pip install 'ddpm-toolkit[serve]'") from None
    print(f"serving on http://{args.host}:{args.port} (Ctrl-C stops)")
    serve(args.host, args.port, args.model)
    return 0
