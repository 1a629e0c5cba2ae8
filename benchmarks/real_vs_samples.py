"""A figure of real held-out images (left) beside a model's samples (right), same count and scale.

The samples come from ``ddpm eval ... --save-samples S.npz`` (or ``ddpm sample`` output saved the
same way), so the figure shows exactly the images that were measured.

    python benchmarks/real_vs_samples.py S.npz --config faces --num 64 --out faces-real-vs-samples.png
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from PIL import Image

from ddpm.imaging import make_image_grid, save_image
from ddpm.pipelines import load_experiment_config
from ddpm.pipelines.evaluate import real_images


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("samples", help=".npz whose 'images' array is N×C×H×W uint8")
    p.add_argument("--config", required=True, help="the model's configuration (names its data set)")
    p.add_argument("--num", type=int, default=64)
    p.add_argument("--scale", type=int, default=2)
    p.add_argument("--out", required=True)
    args = p.parse_args()

    with np.load(args.samples) as f:
        fake = torch.from_numpy(f["images"][: args.num])
    real = real_images(load_experiment_config(args.config).data, "test", args.num)
    nrow = int(np.ceil(np.sqrt(args.num)))
    left, right = make_image_grid(real, nrow=nrow), make_image_grid(fake, nrow=nrow)
    gap = left.width // 16
    both = Image.new("RGB", (left.width + gap + right.width, max(left.height, right.height)), "white")
    both.paste(left, (0, 0))
    both.paste(right, (left.width + gap, 0))
    save_image(both, args.out, scale=args.scale)
    print(f"wrote {args.out}: {len(real)} real test images (left), {len(fake)} samples (right)")


if __name__ == "__main__":
    main()
