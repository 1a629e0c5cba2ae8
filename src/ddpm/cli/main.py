"""``ddpm``: the command line. Each subcommand lives in its own module."""

from __future__ import annotations

import argparse
import sys

from ddpm import __version__
from ddpm.cli import (
    data,
    distill,
    ema,
    evaluate,
    export,
    info,
    plot,
    restore,
    sample,
    samplers,
    segment,
    serve,
    train,
)
from ddpm.errors import UserError

COMMANDS = (
    train,
    distill,
    sample,
    samplers,
    restore,
    segment,
    evaluate,
    info,
    export,
    ema,
    plot,
    serve,
    data,
)


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors take one line; the full usage is in --help."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="ddpm",
        description="Train and sample denoising diffusion probabilistic models.",
        epilog="Run 'ddpm COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"ddpm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args) or 0
    except UserError as err:
        print(f"ddpm {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a path that cannot be read or written: full disk, no permission, …
        where = f" ({err.filename})" if err.filename else ""
        print(f"ddpm {args.command}: error: {err.strerror or err}{where}; check the path", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ddpm {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
