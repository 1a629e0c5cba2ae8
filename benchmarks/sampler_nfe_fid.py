"""FID (Inception) of the image sets that ``sampler_nfe.py --save-images`` kept.

The sampler sweep can run where the Inception weights are not installed (a GPU machine, say);
this measures its best set at each NFE and the 1000-step baseline afterwards, under the protocol
of ``ddpm eval``: N samples against N Fashion-MNIST test images, with N train images as the floor.
Writes results/sampler_nfe_fid.{json,md}.

    python benchmarks/sampler_nfe_fid.py sets.npz [--num 1000]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from common import DomainProbe, timed, write_results

from ddpm.data import load_fashion_mnist
from ddpm.eval import frechet_distance, gaussian_stats
from ddpm.eval.inception import InceptionFeatures


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sets", help=".npz written by sampler_nfe.py --save-images")
    p.add_argument("--num", type=int, default=1000, help="images per set (default: 1000)")
    args = p.parse_args()

    net = InceptionFeatures()
    reference = DomainProbe(args.num).reference
    stats = gaussian_stats(net(reference))
    floor_images = load_fashion_mnist(split="train").images[: args.num]
    fids, seconds = {}, {}
    with np.load(args.sets) as sets:
        named = {"real train images (floor)": floor_images, **{k: torch.from_numpy(sets[k]) for k in sets}}
        for name, images in named.items():
            if len(images) < args.num:
                raise SystemExit(f"set {name} has {len(images)} images, fewer than --num {args.num}")
            features, seconds[name] = timed(net, images[: args.num])
            fids[name] = frechet_distance(*gaussian_stats(features), *stats)
            print(f"{name:28s} FID {fids[name]:7.2f}  ({seconds[name]:.0f} s)", flush=True)
    lines = [
        f"FID of {args.num} samples vs {args.num} Fashion-MNIST test images (Inception protocol of "
        "`ddpm eval`); each sampler's set is the best at its NFE by domain FD.",
        "",
        "| set | FID |",
        "|---|---:|",
        *(f"| {k} | {v:.2f} |" for k, v in fids.items()),
    ]
    write_results("sampler_nfe_fid", {"num": args.num, "fid": fids, "seconds": seconds}, lines)


if __name__ == "__main__":
    main()
