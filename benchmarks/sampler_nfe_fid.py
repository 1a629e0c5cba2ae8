"""FID (Inception) of the image sets that ``sampler_nfe.py --save-images`` kept.

The sampler sweep can run where the Inception weights are not installed (a GPU machine, say);
this measures its best set at each NFE and the 1000-step baseline afterwards, under the protocol
of ``ddpm eval``: N samples against N Fashion-MNIST test images, with N train images as the floor.
Writes results/sampler_nfe_fid.{json,md} (``--name`` for another set file, such as the
guidance sweep's).

    python benchmarks/sampler_nfe_fid.py sets.npz [--num 1000]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from common import timed, write_results

from ddpm.data import DataConfig
from ddpm.eval import frechet_distance, gaussian_stats
from ddpm.eval.features import cached_features, inception_space
from ddpm.pipelines.evaluate import real_images


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sets", help=".npz written by sampler_nfe.py --save-images")
    p.add_argument("--num", type=int, default=1000, help="images per set (default: 1000)")
    p.add_argument("--name", default="sampler_nfe_fid", help="results/NAME.{json,md} (default: %(default)s)")
    args = p.parse_args()

    space = inception_space()
    data = DataConfig(dataset="fashion-mnist", image_size=32)
    key = f"fashion-mnist-32-{args.num}"  # the cache keys of `ddpm eval`: features are shared
    stats = gaussian_stats(cached_features(space, f"{key}-test", lambda: real_images(data, "test", args.num)))
    floor = cached_features(space, f"{key}-train", lambda: real_images(data, "train", args.num))
    fids = {"real train images (floor)": frechet_distance(*gaussian_stats(floor), *stats)}
    seconds = {}
    with np.load(args.sets) as sets:
        for name in sets:
            images = torch.from_numpy(sets[name])
            if len(images) < args.num:
                raise SystemExit(f"set {name} has {len(images)} images, fewer than --num {args.num}")
            features, seconds[name] = timed(space, images[: args.num])
            fids[name] = frechet_distance(*gaussian_stats(features), *stats)
            print(f"{name:28s} FID {fids[name]:7.2f}  ({seconds[name]:.0f} s)", flush=True)
    lines = [
        f"FID of {args.num} samples vs {args.num} Fashion-MNIST test images (Inception protocol of "
        "`ddpm eval`).",
        "",
        "| set | FID |",
        "|---|---:|",
        *(f"| {k} | {v:.2f} |" for k, v in fids.items()),
    ]
    write_results(args.name, {"sets": args.sets, "num": args.num, "fid": fids, "seconds": seconds}, lines)


if __name__ == "__main__":
    main()
