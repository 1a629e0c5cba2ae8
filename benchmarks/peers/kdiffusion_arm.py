"""Peer arm: k-diffusion's training recipe (k-diffusion 0.1.1.post1), trained for a wall-clock budget
on Fashion-MNIST 32×32 with EMA snapshots sampled along the way.

Arms (``--arm``):

- ``kdiff-our-unet``: k-diffusion's recipe applied to OUR U-Net (the fashion-mnist-demo config,
  1,524,257 parameters). ``k_diffusion.layers.Denoiser`` (Karras/EDM preconditioning, σ_data 0.5)
  wraps a small adapter that feeds our U-Net t = 250·ln σ (1000 × EDM's c_noise = ¼ ln σ).
- ``kdiff-own``: k-diffusion's own ``image_v1`` U-Net, laid out like its configs/config_32x32_small.json
  (depths [2, 4, 4], self-attention at the two inner stages, dropout 0.05) with every width scaled by
  19/128 (channels [19, 38, 76], mapping_out 38): 1,466,326 parameters.

The recipe, common to both (``RECIPE`` below; the sources are named there): σ ~ log-normal(−1.2, 1.2)
via ``k_diffusion.utils.rand_log_normal``; ``Denoiser.loss`` with its default "karras" weighting
(plain MSE on the preconditioned target); AdamW lr 1e-4, β (0.95, 0.999), ε 1e-6, weight decay 1e-3
on weight matrices/kernels only; k-diffusion's inverse LR schedule (inv_gamma 20000, power 1,
warm-up 0.99); EMA by ``k_diffusion.utils.EMAWarmup(power=0.6667, max_value=0.9999)`` +
``ema_update`` after every optimiser step. No data augmentation (the config's non-leaking
augmentation needs the augment wrapper's 9-dim conditioning, which our U-Net has no input for).

Sampler: DPM-Solver++(2M) (``sample_dpmpp_2m_sde`` with eta 0 and solver_type "heun", i.e. its
deterministic form) on ``get_sigmas_karras(nfe, 0.01, 80, rho=7)``: exactly what k-diffusion's train.py
uses for its demo grids and FID evaluation, with steps = NFE. A multistep solver spends one network
evaluation per step, so at 35 NFE it takes 35 steps where Heun (2 NFE a step) takes 18.

Run with the peers venv (benchmarks/peers/setup.sh):

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv-peers/bin/python benchmarks/peers/kdiffusion_arm.py \\
        --arm kdiff-our-unet --minutes 10 --snapshots 2.5,5,10 --num 1000 --nfe 35 --out DIR

Writes DIR/samples-{mark}min.npz (``images``: uint8 (num, C, 32, 32)) and DIR/arm.json. The argument
parsing and the train/snapshot loop below are shared with ddpm_pytorch_arm.py.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # the peers' samplers draw progress bars
warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", message="pkg_resources is deprecated")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from ddpm.data import DataConfig, load_dataset  # noqa: E402
from ddpm.fileio import atomic_write, write_text_atomic  # noqa: E402
from ddpm.imaging import to_uint8  # noqa: E402

SAMPLE_CHUNK = 250  # images per sampler batch (memory only; the samplers treat images independently)

# ---------------------------------------------------------------- shared harness


@dataclass
class Arm:
    name: str
    recipe: dict  # every hyper-parameter, stated plainly, with its source
    parameters: int  # trainable parameters of the network
    train_step: Callable[[torch.Tensor], None]  # one optimiser step (+ EMA) on a [-1, 1] batch
    sample: Callable[[int], torch.Tensor]  # EMA model → n images in [-1, 1], global RNG for noise
    sampler: str


def parse_args(arms: list[str], description: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description.split("\n\n")[0])
    p.add_argument("--arm", choices=arms, default=arms[0])
    p.add_argument("--minutes", type=float, required=True, help="training wall clock (sampling excluded)")
    p.add_argument("--snapshots", default="", help="training-minute marks, e.g. 2.5,5,10 (last = --minutes)")
    p.add_argument("--num", type=int, default=1000, help="images sampled at each mark")
    p.add_argument("--nfe", type=int, default=35, help="network evaluations per sampled image")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument(
        "--data", choices=("fashion-mnist", "faces"), default="fashion-mnist", help="32×32 train set"
    )
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    args.marks = [float(m) for m in args.snapshots.split(",")] if args.snapshots else [args.minutes]
    if any(b <= a for a, b in zip([0.0] + args.marks, args.marks, strict=False)):
        p.error("--snapshots must be positive and increasing")
    if not math.isclose(args.marks[-1], args.minutes):
        p.error("the last --snapshots mark must equal --minutes")
    if args.num < 1 or args.nfe < 1 or args.batch_size < 1 or args.threads < 1:
        p.error("--num, --nfe, --batch-size and --threads must be positive")
    return args


def data_channels(data: str) -> int:
    return 3 if data == "faces" else 1


def batches(data: str, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless shuffled epochs of a train set (32×32, [-1, 1]); partial last batches dropped."""
    config = DataConfig(dataset=data, split="train", image_size=32, channels=data_channels(data))
    images = load_dataset(config).images
    while True:
        order = torch.randperm(len(images), generator=generator)
        for i in range(0, len(order) - batch_size + 1, batch_size):
            yield images[order[i : i + batch_size]].float() / 127.5 - 1


def write_npz(path: Path, images: np.ndarray) -> None:
    """Write ``images`` as an .npz (key ``images``) under a temporary name, then rename it to ``path``."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object, so numpy does not append ".npz" to the temporary name
            np.savez(f, images=images)

    atomic_write(path, write)


def run(args: argparse.Namespace, build: Callable[[argparse.Namespace], Arm]) -> None:
    """Seed, build the arm, train until each mark, sample there with the EMA model, write the results."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    arm = build(args)
    data = batches(args.data, args.batch_size, torch.Generator().manual_seed(args.seed))
    record = {
        "arm": arm.name,
        "recipe": arm.recipe,
        "parameters": arm.parameters,
        "batch_size": args.batch_size,
        "data": args.data,
        "seed": args.seed,
        "threads": args.threads,
        "torch": torch.__version__,
        "snapshots": [],
    }
    steps, train_seconds = 0, 0.0
    for mark in args.marks:
        start = time.perf_counter()
        while train_seconds + time.perf_counter() - start < mark * 60:
            arm.train_step(next(data))
            steps += 1
        train_seconds += time.perf_counter() - start

        start = time.perf_counter()
        with torch.random.fork_rng(devices=[]):  # same noise at every mark; training RNG untouched
            torch.manual_seed(args.seed + 1)
            chunks = [min(SAMPLE_CHUNK, args.num - i) for i in range(0, args.num, SAMPLE_CHUNK)]
            images = torch.cat([to_uint8(arm.sample(n)) for n in chunks])
        sample_seconds = time.perf_counter() - start

        write_npz(args.out / f"samples-{mark:g}min.npz", images.numpy())
        record["snapshots"].append(
            {
                "minutes": mark,
                "steps": steps,
                "images_seen": steps * args.batch_size,
                "train_seconds": round(train_seconds, 2),
                "sample_seconds": round(sample_seconds, 2),
                "sampler": arm.sampler,
                "nfe": args.nfe,
                "num": args.num,
            }
        )
        write_text_atomic(args.out / "arm.json", json.dumps(record, indent=2) + "\n")
        print(
            f"{arm.name}: {mark:g} min, {steps} steps ({steps * 60 / train_seconds:.1f}/min), "
            f"{args.num} samples in {sample_seconds:.1f} s -> {args.out}",
            flush=True,
        )


# ---------------------------------------------------------------- the k-diffusion arms

RECIPE = {
    "source": "k-diffusion 0.1.1.post1: train.py and configs/config_32x32_small.json (the version "
    "with log-normal σ sampling), k_diffusion/config.py defaults",
    "preconditioning": "k_diffusion.layers.Denoiser (Karras et al. 2022 c_skip/c_out/c_in), sigma_data 0.5 "
    "(config_32x32_small.json)",
    "loss": "Denoiser.loss, weighting 'karras' (config.py default: weight 1 on the preconditioned target, "
    "i.e. EDM's λ(σ)), mean over pixels then over the batch",
    "sigma_sampling": "log-normal, mean -1.2, std 1.2 (config_32x32_small.json sigma_sample_density; "
    "k_diffusion.utils.rand_log_normal)",
    "optimizer": "AdamW lr 1e-4, betas (0.95, 0.999), eps 1e-6, weight_decay 1e-3 (config_32x32_small.json "
    "optimizer = config.py's image_v1 defaults)",
    "weight_decay_on": "kdiff-own: ImageDenoiserModelV1.param_groups (the .weight tensors under mapping and "
    "u_net, as train.py uses); kdiff-our-unet: tensors with >= 2 dims (conv/linear weights), none on "
    "biases or norm gains",
    "lr_schedule": "inverse, inv_gamma 20000, power 1.0, warmup 0.99: lr = 1e-4 * (1 - 0.99**(step+1)) * "
    "(1 + step/20000)**-1 (config_32x32_small.json lr_sched; k_diffusion.utils.InverseLR's closed form, "
    "run through torch LambdaLR because InverseLR's constructor fails under torch 2.13)",
    "ema": "k_diffusion.utils.EMAWarmup(power=0.6667, max_value=0.9999) (train.py's ema_sched from the "
    "config; inv_gamma 1, min_value 0), k_diffusion.utils.ema_update after every optimiser step",
    "gradient_clipping": "none (train.py has none)",
    "augmentation": "none (config: augment_prob 0.12 with the augment wrapper; off because our U-Net "
    "cannot take its 9-dim conditioning, and off for kdiff-own too so the arms differ only in the network)",
    "data": "Fashion-MNIST train, 28x28 zero-padded to 32x32, x/127.5 - 1, shuffled epochs",
    "sampler": "sample_dpmpp_2m_sde(eta=0, solver_type='heun') = deterministic DPM-Solver++(2M), "
    "get_sigmas_karras(nfe, sigma_min 0.01, sigma_max 80, rho 7), x_T = 80 * N(0, I), EMA weights "
    "(train.py demo()/evaluate(); sigma_min/max from the config); NFE = steps",
    "sigma_min": 0.01,
    "sigma_max": 80.0,
}


class SigmaToTimestep(nn.Module):
    """Lets k-diffusion call our U-Net: ``inner(x, σ)`` → ``unet(x, 250·ln σ)`` (1000 × EDM's c_noise)."""

    def __init__(self, unet: nn.Module):
        super().__init__()
        self.unet = unet

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return self.unet(x, 250.0 * sigma.log())


def build(args: argparse.Namespace) -> Arm:
    import k_diffusion as K

    if args.data != "fashion-mnist":
        raise SystemExit(
            "the k-diffusion arms are laid out for Fashion-MNIST only (use --data fashion-mnist)"
        )
    recipe = dict(RECIPE)
    if args.arm == "kdiff-our-unet":
        from ddpm.models import UNet
        from ddpm.pipelines import load_experiment_config

        unet = UNet(load_experiment_config("fashion-mnist-demo").model)
        inner = SigmaToTimestep(unet)
        decay = [p for p in inner.parameters() if p.ndim >= 2]
        no_decay = [p for p in inner.parameters() if p.ndim < 2]
        groups = [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]
        recipe["network"] = (
            "ddpm UNet(load_experiment_config('fashion-mnist-demo').model) fed t = 250*ln(sigma); "
            "its own settings (base 32, mults [1,2,2,2], 1 res block, attention at 16 and mid, dropout 0)"
        )
    else:
        widths = {"depths": [2, 4, 4], "channels": [19, 38, 76], "mapping_out": 38}
        inner = K.models.ImageDenoiserModelV1(
            c_in=1,
            feats_in=widths["mapping_out"],
            depths=widths["depths"],
            channels=widths["channels"],
            self_attn_depths=[False, True, True],
            dropout_rate=0.05,
        )
        groups = inner.param_groups(1e-4)
        recipe["network"] = (
            f"k_diffusion.models.ImageDenoiserModelV1, input_channels 1, depths {widths['depths']}, "
            f"channels {widths['channels']}, mapping_out {widths['mapping_out']} (config_32x32_small.json's "
            "[128, 256, 512] / 256 scaled by 19/128), self_attn_depths [false, true, true], dropout 0.05, "
            "patch_size 1, has_variance false, no augment wrapper"
        )

    model = K.layers.Denoiser(inner, sigma_data=0.5)
    model_ema = copy.deepcopy(model).eval()
    model_ema.requires_grad_(False)
    opt = torch.optim.AdamW(groups, lr=1e-4, betas=(0.95, 0.999), eps=1e-6, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: (1 - 0.99 ** (step + 1)) / (1 + step / 20000))
    ema_sched = K.utils.EMAWarmup(power=0.6667, max_value=0.9999)

    def train_step(x: torch.Tensor) -> None:
        model.train()
        noise = torch.randn_like(x)
        sigma = K.utils.rand_log_normal([x.shape[0]], loc=-1.2, scale=1.2)
        loss = model.loss(x, noise, sigma).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            K.utils.ema_update(model, model_ema, ema_sched.get_value())
        ema_sched.step()

    @torch.no_grad()
    def sample(n: int) -> torch.Tensor:
        sigmas = K.sampling.get_sigmas_karras(args.nfe, RECIPE["sigma_min"], RECIPE["sigma_max"], rho=7.0)
        x = torch.randn(n, 1, 32, 32) * sigmas[0]
        return K.sampling.sample_dpmpp_2m_sde(model_ema, x, sigmas, eta=0.0, solver_type="heun", disable=True)

    return Arm(
        name=args.arm,
        recipe=recipe,
        parameters=sum(p.numel() for p in inner.parameters()),
        train_step=train_step,
        sample=sample,
        sampler=f"k-diffusion sample_dpmpp_2m_sde(eta=0, solver_type='heun'), Karras σ, {args.nfe} steps",
    )


if __name__ == "__main__":
    run(parse_args(["kdiff-our-unet", "kdiff-own"], __doc__), build)
