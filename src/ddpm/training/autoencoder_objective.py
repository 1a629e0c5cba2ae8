"""The autoencoder's objective (Rombach et al. 2022, App. G): reconstruction + β·KL, and after a
warm-up an adversarial term from a patch discriminator, balanced against the reconstruction by the
ratio of their gradients at the decoder's last layer (Esser et al. 2021, eq. 7)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ddpm.models.autoencoder import DiagonalGaussian
from ddpm.validation import require_choice, require_int, require_number, require_positive_int

RECONSTRUCTIONS = ("l1", "l2")
ADAPTIVE_WEIGHT_MAX = 1e4


@dataclass
class AutoencoderLossConfig:
    """Weights of the autoencoder's loss terms."""

    reconstruction: str = field(default="l1", metadata={"help": "pixel loss: l1 or l2"})
    kl_weight: float = field(default=1e-6, metadata={"help": "β of the KL penalty towards N(0, I)"})
    disc_weight: float = field(
        default=0.0, metadata={"help": "weight of the patch-adversarial term; 0 = no discriminator"}
    )
    disc_start: int = field(
        default=1000, metadata={"help": "steps of reconstruction only before the GAN term"}
    )
    disc_lr: float = field(default=0.0, metadata={"help": "discriminator learning rate; 0 = train.lr"})
    disc_channels: int = field(default=32, metadata={"help": "channels of the discriminator's first layer"})
    disc_layers: int = field(default=3, metadata={"help": "stride-2 discriminator layers (patch size grows)"})

    def __post_init__(self) -> None:
        require_choice("reconstruction", self.reconstruction, RECONSTRUCTIONS)
        require_number("kl_weight", self.kl_weight, 0)
        require_number("disc_weight", self.disc_weight, 0)
        require_int("disc_start", self.disc_start, 0)
        require_number("disc_lr", self.disc_lr, 0)
        require_positive_int("disc_channels", self.disc_channels)
        require_positive_int("disc_layers", self.disc_layers)


def reconstruction_loss(x_hat: torch.Tensor, x: torch.Tensor, kind: str = "l1") -> torch.Tensor:
    """Σ_pixels |x̂ − x| (or (x̂ − x)²) per image, averaged over the batch (LDM's scale, against
    which a KL weight of 1e-6 is meant)."""
    diff = (x_hat.float() - x.float()).abs() if kind == "l1" else (x_hat.float() - x.float()).pow(2)
    return diff.flatten(1).sum(dim=1).mean()


def kl_loss(posterior: DiagonalGaussian) -> torch.Tensor:
    """KL(q(z | x) ‖ N(0, I)) averaged over the batch (:meth:`DiagonalGaussian.kl`)."""
    return posterior.kl().mean()


def generator_adversarial_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """−E[D(x̂)]: the decoder's side of the hinge GAN."""
    return -fake_logits.float().mean()


def discriminator_hinge_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """½ (E[max(0, 1 − D(x))] + E[max(0, 1 + D(x̂))]) (Lim & Ye 2017)."""
    return 0.5 * (F.relu(1.0 - real_logits.float()).mean() + F.relu(1.0 + fake_logits.float()).mean())


def adaptive_adversarial_weight(
    reconstruction: torch.Tensor, adversarial: torch.Tensor, last_layer: torch.Tensor
) -> torch.Tensor:
    """λ = ‖∇_w L_rec‖ / (‖∇_w L_adv‖ + 10⁻⁴) at the decoder's last weight w, clamped to [0, 10⁴]
    and detached: the adversarial gradient is kept on the scale of the reconstruction one."""
    g_rec = torch.autograd.grad(reconstruction, last_layer, retain_graph=True)[0]
    g_adv = torch.autograd.grad(adversarial, last_layer, retain_graph=True)[0]
    return (g_rec.norm() / (g_adv.norm() + 1e-4)).clamp(0.0, ADAPTIVE_WEIGHT_MAX).detach()


def psnr(x_hat: torch.Tensor, x: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB of images in [−1, 1] (peak-to-peak 2), over the whole batch."""
    mse = (x_hat.float().clamp(-1, 1) - x.float()).pow(2).mean()
    return float(10 * torch.log10(4.0 / mse.clamp_min(1e-12)))


def latent_scale_factor(latents: torch.Tensor) -> float:
    """1 / std(z) over every element of a batch of latents, so that scaled latents have unit
    variance (Rombach et al. 2022, §4.3.2; Stable Diffusion's 0.18215 is this number for its VAE)."""
    std = float(latents.double().std())
    if not std > 0:
        raise ValueError("the latents have zero spread; the autoencoder is degenerate")
    return 1.0 / std
