"""Peer arm ``ddpm-pytorch``: denoising-diffusion-pytorch 2.3.4's defaults at our model size, trained for
a wall-clock budget on Fashion-MNIST 32×32 (or faces 32×32, ``--data faces``) with EMA snapshots
sampled along the way.

Model: its ``Unet`` with every default (dim_mults (1, 2, 4, 8), full attention only at the innermost
stage and linear attention elsewhere, 4 heads of 32, dropout 0, no self-conditioning, no learned
variance) except channels=1 and dim=12, the even dim whose size is nearest ours: 1,424,401
parameters (dim must be even; 14 gives 1,897,089; our U-Net has 1,524,257). On faces channels=3 and
dim=12 again: 1,425,603 parameters against our faces U-Net's 1,525,411 (14 gives 1,898,491). Wrapped in its
``GaussianDiffusion`` with every default: 1000 timesteps, sigmoid β schedule, v-prediction,
min-SNR loss weighting off (γ 5 unused), offset noise 0, auto-normalisation of [0, 1] input to
[-1, 1], DDIM η 0 — except sampling_timesteps = --nfe, which switches its sampler to DDIM.

Training reproduces its ``Trainer``'s defaults in a plain loop (the Trainer itself wants a folder of
images and accelerate): Adam lr 1e-4, β (0.9, 0.99); gradient-norm clipping at 1.0; random
horizontal flips (augment_horizontal_flip=True); ``ema_pytorch.EMA(diffusion, beta=0.995,
update_every=10)`` (its defaults: update_after_step 100, inv_gamma 1, power 2/3) updated after each
step; no mixed precision. The batch is --batch-size (the Trainer's default is 16).

Sampler: its DDIM (``GaussianDiffusion.ddim_sample``: --nfe evaluations, x0 clipped to [-1, 1]) with
the EMA model, as its Trainer samples when sampling_timesteps < timesteps.

Run with the peers venv (benchmarks/peers/setup.sh):

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv-peers/bin/python benchmarks/peers/ddpm_pytorch_arm.py \\
        --minutes 10 --snapshots 2.5,5,10 --num 1000 --nfe 35 --out DIR

Command line and outputs as kdiffusion_arm.py (whose harness this uses).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# isort: off
from kdiffusion_arm import Arm, data_channels, parse_args, run  # noqa: E402  (first: it sets TQDM_DISABLE before tqdm loads)
import torch  # noqa: E402
# isort: on

RECIPE = {
    "source": "denoising-diffusion-pytorch 2.3.4: Unet, GaussianDiffusion and Trainer defaults "
    "(denoising_diffusion_pytorch/denoising_diffusion_pytorch.py), ema-pytorch 0.8.3 EMA defaults",
    "network": "Unet(dim=12, channels=1 (3 on faces)), defaults otherwise: dim_mults (1, 2, 4, 8), "
    "init_dim = dim, "
    "full_attn only at the innermost stage (linear attention elsewhere), attn_heads 4, attn_dim_head 32, "
    "dropout 0, self_condition False, learned_variance False, sinusoidal_pos_emb_theta 10000, "
    "flash_attn False",
    "diffusion": "GaussianDiffusion defaults: timesteps 1000, beta_schedule 'sigmoid' (start -3, end 3, "
    "tau 1), objective 'pred_v', min_snr_loss_weight False (min_snr_gamma 5 unused), "
    "offset_noise_strength 0, auto_normalize True ([0, 1] -> [-1, 1]), immiscible False, "
    "ddim_sampling_eta 0; sampling_timesteps = nfe",
    "loss": "GaussianDiffusion.forward: per-image MSE to v, times uniform over 0..999, weighted by its "
    "loss_weight for pred_v, SNR/(SNR+1) (= alpha_bar_t) with min-SNR off",
    "optimizer": "Adam lr 1e-4, betas (0.9, 0.99), eps 1e-8, no weight decay (Trainer: train_lr, adam_betas)",
    "lr_schedule": "constant (the Trainer has none)",
    "gradient_clipping": "clip_grad_norm 1.0 (Trainer max_grad_norm)",
    "ema": "ema_pytorch.EMA(diffusion, beta=0.995, update_every=10) (Trainer ema_decay, ema_update_every); "
    "EMA defaults update_after_step 100 (copies weights until then), inv_gamma 1, power 2/3, min_value 0",
    "augmentation": "random horizontal flip, p 0.5 (Trainer augment_horizontal_flip=True)",
    "gradient_accumulation": "1 (Trainer gradient_accumulate_every)",
    "precision": "fp32 (Trainer amp False)",
    "data": "Fashion-MNIST train, 28x28 zero-padded to 32x32 (or the faces train split, 32x32 RGB), fed "
    "in [0, 1] (x/255), shuffled epochs; "
    "the Trainer's default batch is 16, this benchmark uses --batch-size",
    "sampler": "GaussianDiffusion.ddim_sample with the EMA model: sampling_timesteps = nfe, times "
    "linspace(-1, 999, nfe+1) truncated, eta 0, x0 clipped to [-1, 1]; NFE = sampling_timesteps",
}


def build(args: argparse.Namespace) -> Arm:
    from denoising_diffusion_pytorch import GaussianDiffusion, Unet
    from ema_pytorch import EMA

    channels = data_channels(args.data)
    unet = Unet(dim=12, channels=channels)
    diffusion = GaussianDiffusion(unet, image_size=32, sampling_timesteps=args.nfe)
    opt = torch.optim.Adam(diffusion.parameters(), lr=1e-4, betas=(0.9, 0.99))
    ema = EMA(diffusion, beta=0.995, update_every=10)

    def train_step(x: torch.Tensor) -> None:
        diffusion.train()
        flip = torch.rand(x.shape[0], 1, 1, 1) < 0.5
        x = torch.where(flip, x.flip(-1), x)
        loss = diffusion((x + 1) / 2)  # their model takes [0, 1] and normalises to [-1, 1] itself
        loss.backward()
        torch.nn.utils.clip_grad_norm_(diffusion.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        ema.update()

    def sample(n: int) -> torch.Tensor:
        ema.ema_model.eval()
        return ema.ema_model.sample(batch_size=n) * 2 - 1  # [0, 1] -> [-1, 1]

    return Arm(
        name="ddpm-pytorch",
        recipe=RECIPE,
        parameters=sum(p.numel() for p in unet.parameters()),
        train_step=train_step,
        sample=sample,
        sampler=f"denoising-diffusion-pytorch DDIM (eta 0, sampling_timesteps {args.nfe})",
    )


if __name__ == "__main__":
    run(parse_args(["ddpm-pytorch"], __doc__), build)
