"""A figure of held-out faces (top row) and their reconstructions by one or more autoencoders (a row
each, from the posterior mean), with each autoencoder's PSNR on those images in the file name's
companion JSON.

    python benchmarks/autoencoder_reconstructions.py runs/ae4 runs/ae8 --num 8 --out recon.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ddpm.data import DataConfig
from ddpm.imaging import make_image_grid, save_image, to_model_range
from ddpm.pipelines.autoencoders import load_autoencoder
from ddpm.pipelines.evaluate import real_images
from ddpm.training.autoencoder_objective import psnr


@torch.no_grad()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("autoencoders", nargs="+", help="autoencoder runs, checkpoints or pretrained names")
    p.add_argument("--num", type=int, default=8)
    p.add_argument("--scale", type=int, default=2)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    coders = [load_autoencoder(a) for a in args.autoencoders]
    size = coders[0].config.image_size
    real = real_images(DataConfig(dataset="faces", image_size=size, channels=3), "test", args.num)
    x = to_model_range(real)
    rows, scores = [x], {}
    for name, coder in zip(args.autoencoders, coders, strict=True):
        x_hat = coder.model.decode(coder.model.encode(x).mode()).clamp(-1, 1)
        rows.append(x_hat)
        scores[name] = {"f": coder.config.downsampling_factor, "psnr": psnr(x_hat, x)}
    save_image(make_image_grid(torch.cat(rows), nrow=args.num), args.out, scale=args.scale)
    Path(args.out).with_suffix(".json").write_text(json.dumps(scores, indent=2) + "\n")
    print(json.dumps(scores, indent=2))


if __name__ == "__main__":
    main()
