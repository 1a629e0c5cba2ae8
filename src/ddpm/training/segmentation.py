"""Training segmenters from a few labelled images: the per-pixel MLP ensemble on frozen features
(Baranchuk et al. 2022), and the baseline a practitioner tries first, a U-Net trained from
scratch on the same images with flips and crops."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F

from ddpm.models.segmentation_head import PixelClassifier, PixelHeadConfig
from ddpm.models.unet import UNet, UNetConfig
from ddpm.runtime import progress_bar


@dataclass
class PixelTrainConfig:
    """Optimisation of the per-pixel MLP ensemble (each member on its own random pixel batches)."""

    steps: int = field(default=1500, metadata={"help": "optimiser steps per ensemble member"})
    batch_size: int = field(default=1024, metadata={"help": "pixels per step"})
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate (cosine decay to 0)"})
    balanced: bool = field(default=False, metadata={"help": "weight classes by inverse pixel frequency"})
    seed: int = field(default=0, metadata={"help": "seed of the initial weights and of the batches"})


def balanced_class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """w_k = n / (K_present · n_k) for classes present in ``labels`` (0 for absent ones): every
    present class carries the same total weight in the cross-entropy."""
    counts = torch.bincount(labels.reshape(-1).long(), minlength=num_classes).double()
    present = counts > 0
    w = torch.zeros(num_classes, dtype=torch.float64)
    w[present] = counts.sum() / (present.sum() * counts[present])
    return w.float()


def cosine_lr(base: float, step: int, steps: int) -> float:
    """base · ½(1 + cos(π step / steps))."""
    return base * 0.5 * (1 + math.cos(math.pi * step / steps))


def train_pixel_classifier(
    features: torch.Tensor,
    labels: torch.Tensor,
    head: PixelHeadConfig,
    config: PixelTrainConfig | None = None,
    progress: bool = True,
) -> PixelClassifier:
    """Fit the ensemble to pixel features (N, D) and labels (N,) by cross-entropy; eval mode."""
    config = config or PixelTrainConfig()
    if len(features) != len(labels) or features.ndim != 2 or features.shape[1] != head.in_features:
        raise ValueError(
            f"features {tuple(features.shape)} do not match {len(labels)} labels of {head.in_features}"
        )
    torch.manual_seed(config.seed)
    model = PixelClassifier(head)
    x = features  # kept in its storage dtype (float16 for large sets); standardise() casts batches
    stats = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(config.seed))[:200_000]].float()
    model.set_normalisation(stats.mean(0), stats.std(0))
    y = labels.reshape(-1).long()
    weight = balanced_class_weights(y, head.num_classes) if config.balanced else None
    bar = progress_bar(total=config.steps * head.members, desc="pixel classifier", enabled=progress)
    for index, member in enumerate(model.members):
        g = torch.Generator().manual_seed(config.seed * 1000 + index)
        opt = torch.optim.Adam(member.parameters(), lr=config.lr)
        member.train()
        for step in range(config.steps):
            for group in opt.param_groups:
                group["lr"] = cosine_lr(config.lr, step, config.steps)
            pick = torch.randint(len(x), (min(config.batch_size, len(x)),), generator=g)
            logits = member(model.standardise(x[pick]))
            loss = F.cross_entropy(logits, y[pick], weight=weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            bar.update(1)
    bar.close()
    return model.eval()


@dataclass
class SupervisedConfig:
    """A U-Net trained from scratch on the labelled images (the practitioner's baseline)."""

    steps: int = field(default=1500, metadata={"help": "optimiser steps"})
    batch_size: int = field(default=8, metadata={"help": "images per step"})
    lr: float = field(default=1e-3, metadata={"help": "AdamW learning rate (cosine decay to 0)"})
    weight_decay: float = field(default=1e-4, metadata={"help": "AdamW weight decay"})
    min_crop: float = field(default=0.75, metadata={"help": "smallest crop side, as a share of the image"})
    dropout: float = field(default=0.1, metadata={"help": "dropout in the ResNet blocks"})
    seed: int = field(default=0, metadata={"help": "seed of the weights, batches and augmentation"})


def flip_and_crop(
    images: torch.Tensor, labels: torch.Tensor, min_crop: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same random horizontal flip and random square crop (side ∈ [min_crop, 1] of the image,
    resized back: bilinear for images, nearest for labels) applied to each image and its labels."""
    size = images.shape[-1]
    out_x, out_y = [], []
    for x, y in zip(images, labels, strict=True):
        if torch.rand((), generator=generator) < 0.5:
            x, y = x.flip(-1), y.flip(-1)
        side = int(round(size * (min_crop + (1 - min_crop) * float(torch.rand((), generator=generator)))))
        top, left = (int(torch.randint(size - side + 1, (), generator=generator)) for _ in range(2))
        x = x[:, top : top + side, left : left + side]
        y = y[top : top + side, left : left + side]
        out_x.append(F.interpolate(x[None], size=(size, size), mode="bilinear")[0])
        out_y.append(F.interpolate(y[None, None].float(), size=(size, size), mode="nearest")[0, 0].long())
    return torch.stack(out_x), torch.stack(out_y)


def segmentation_unet(architecture: UNetConfig, num_classes: int, dropout: float) -> UNet:
    """The diffusion U-Net's architecture with one output channel per class, run at t = 0."""
    unconditional = {"num_classes": 0, "cond_channels": 0, "context_dim": 0, "aug_level": False}
    return UNet(replace(architecture, out_channels=num_classes, dropout=dropout, **unconditional))


def segment_with_unet(model: UNet, images: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    """(B, H, W) most likely class of every pixel of images in [−1, 1]."""
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(images), chunk):
            x = images[start : start + chunk].float()
            out.append(model(x, torch.zeros(len(x), dtype=torch.long)).argmax(1))
    return torch.cat(out)


def train_supervised_unet(
    images: torch.Tensor,
    labels: torch.Tensor,
    architecture: UNetConfig,
    num_classes: int,
    config: SupervisedConfig | None = None,
    progress: bool = True,
) -> UNet:
    """Cross-entropy training from random weights on images in [−1, 1] (B, C, H, W) and labels
    (B, H, W), with :func:`flip_and_crop`; eval mode."""
    config = config or SupervisedConfig()
    torch.manual_seed(config.seed)
    model = segmentation_unet(architecture, num_classes, config.dropout)
    nn_out = model.out_conv  # the diffusion U-Net zero-initialises its output; a classifier must not
    torch.nn.init.normal_(nn_out.weight, std=1e-2)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    g = torch.Generator().manual_seed(config.seed)
    model.train()
    for step in progress_bar(range(config.steps), desc="supervised U-Net", enabled=progress):
        for group in opt.param_groups:
            group["lr"] = cosine_lr(config.lr, step, config.steps)
        pick = torch.randint(len(images), (min(config.batch_size, len(images)),), generator=g)
        x, y = flip_and_crop(images[pick].float(), labels[pick], config.min_crop, g)
        loss = F.cross_entropy(model(x, torch.zeros(len(x), dtype=torch.long)), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()
