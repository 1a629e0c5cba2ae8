"""``ddpm samplers``: list the samplers, one line each."""

from __future__ import annotations

import argparse

from ddpm.samplers.config import SAMPLERS, STOCHASTIC


def add_parser(sub) -> None:
    p = sub.add_parser(
        "samplers", help="list the samplers", description="List the samplers `ddpm sample` offers."
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    width = max(map(len, SAMPLERS))
    for name, text in SAMPLERS.items():
        kind = "stochastic" if name in STOCHASTIC else "η-dependent" if name == "ddim" else "deterministic"
        print(f"{name:{width}s}  {kind:13s}  {text}")
    return 0
