"""Per-pixel features from a U-Net's intermediate activations (Baranchuk et al. 2022, Sec. 3).

The image is noised to x_t by the forward process (DDPM eq. 4), the U-Net runs once at t, forward
hooks keep the outputs of the chosen blocks, and each is upsampled bilinearly to the image's size
and concatenated along channels: one feature vector per pixel.

Block names, in forward order: ``enc0 …`` (encoder ResNet layers), ``mid0``, ``mid1`` (the middle),
``dec0 …`` (decoder layers, ``dec0`` the deepest, as the anchor numbers them). Down- and upsampling
layers are not blocks: their outputs are their neighbours' resampled.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ddpm.models.unet import UNetLayer
from ddpm.process.forward import q_sample
from ddpm.schedules import NoiseSchedule


def unet_blocks(unet: nn.Module) -> dict[str, nn.Module]:
    """The named blocks of a :class:`~ddpm.models.unet.UNet` whose outputs can be features."""
    blocks: dict[str, nn.Module] = {}
    for prefix, layers in (("enc", unet.down), ("mid", unet.mid), ("dec", unet.up)):
        kept = [m for m in layers if isinstance(m, UNetLayer)]
        blocks.update({f"{prefix}{i}": layer for i, layer in enumerate(kept)})
    return blocks


def default_blocks(unet: nn.Module) -> tuple[str, ...]:
    """The decoder blocks strictly between the lowest and the highest resolution (the anchor's
    choice: mid-decoder features carry both part identity and position), or every decoder block
    when the network has fewer than three resolutions."""
    shapes = block_channels(unet)
    decoder = {n: res for n, (_, res) in shapes.items() if n.startswith("dec")}
    low, high = min(decoder.values()), max(decoder.values())
    middle = tuple(n for n, res in decoder.items() if low < res < high)
    return middle or tuple(decoder)


def check_block_names(names: Sequence[str], available: Sequence[str]) -> None:
    """Refuse unknown or repeated block names with the list of valid ones."""
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ValueError(f"unknown block(s) {', '.join(unknown)}; this network has {', '.join(available)}")
    if len(set(names)) != len(names) or not names:
        raise ValueError("choose each block once, and at least one block")


def capture_outputs(
    blocks: dict[str, nn.Module], names: Sequence[str], run: Callable[[], object]
) -> list[torch.Tensor]:
    """Outputs of ``blocks[name]`` for every name, in that order, during one call of ``run``.

    Forward hooks are attached for the call only and removed even when it fails."""
    check_block_names(names, list(blocks))
    kept: dict[str, torch.Tensor] = {}
    handles = [
        blocks[n].register_forward_hook(lambda _m, _args, out, n=n: kept.__setitem__(n, out)) for n in names
    ]
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    return [kept[n] for n in names]


def upsample_concat(maps: Sequence[torch.Tensor], size: int) -> torch.Tensor:
    """Feature maps of any resolutions → (B, ΣC, size, size), bilinear (corners not aligned)."""
    return torch.cat(
        [
            m.float() if m.shape[-1] == size else F.interpolate(m.float(), size=(size, size), mode="bilinear")
            for m in maps
        ],
        dim=1,
    )


def fixed_noise(shape: tuple[int, ...], timesteps: Sequence[int], draws: int, seed: int) -> torch.Tensor:
    """(draws, len(timesteps), *shape) standard normal noise from ``seed``: one draw per timestep,
    shared by every image, so an image's features do not depend on the batch it is in."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn((draws, len(timesteps), *shape), generator=g)


@torch.no_grad()
def diffusion_features(
    unet: nn.Module,
    x0: torch.Tensor,
    schedule: NoiseSchedule,
    timesteps: Sequence[int],
    blocks: Sequence[str],
    *,
    size: int | None = None,
    draws: int = 1,
    seed: int = 0,
    chunk: int = 16,
    model_kwargs: dict | None = None,
) -> torch.Tensor:
    """Per-pixel features (B, len(timesteps)·ΣC_block, size, size) of clean inputs ``x0``.

    For every timestep t (code indexing, 0 … T−1): x_t = √ᾱ_t x0 + √(1−ᾱ_t) ε (DDPM eq. 4) with fixed
    noise ε (:func:`fixed_noise`), the outputs of ``blocks`` upsampled to ``size`` (default: the
    input's) and concatenated, timestep-major. With ``draws`` > 1 the features are averaged over that
    many noise draws. Images are processed ``chunk`` at a time, so memory is bounded by the chunk
    plus the float32 result."""
    if not timesteps:
        raise ValueError("choose at least one timestep")
    bad = [t for t in timesteps if not 0 <= t < schedule.num_timesteps]
    if bad:
        raise ValueError(f"timesteps {bad} are outside 0 … {schedule.num_timesteps - 1}")
    if draws < 1 or chunk < 1:
        raise ValueError("draws and chunk must be at least 1")
    size = size or x0.shape[-1]
    named = unet_blocks(unet)
    check_block_names(blocks, list(named))
    param = next(unet.parameters())
    noise = fixed_noise(tuple(x0.shape[1:]), timesteps, draws, seed)
    out = []
    for start in range(0, len(x0), chunk):
        x = x0[start : start + chunk].to(device=param.device, dtype=torch.float32)
        kwargs = {k: v[start : start + chunk] for k, v in (model_kwargs or {}).items()}
        total = None
        for d in range(draws):
            per_t = []
            for i, t in enumerate(timesteps):
                eps = noise[d, i].to(x.device).expand_as(x)
                xt = q_sample(x, t, schedule, eps)
                tt = torch.full((len(x),), t, device=x.device, dtype=torch.long)
                maps = capture_outputs(named, blocks, lambda xt=xt, tt=tt, kw=kwargs: unet(xt, tt, **kw))
                per_t.append(upsample_concat(maps, size))
            feats = torch.cat(per_t, dim=1)
            total = feats if total is None else total + feats
        out.append((total / draws).cpu())
    return torch.cat(out)


def block_channels(unet: nn.Module) -> dict[str, tuple[int, int]]:
    """(channels, resolution) of every block's output, from one dry run on a zero input."""
    c = unet.config
    named = unet_blocks(unet)
    param = next(unet.parameters())
    x = torch.zeros(1, c.in_channels, c.image_size, c.width, device=param.device)
    kwargs = {}
    if c.num_classes:
        kwargs["class_labels"] = torch.zeros(1, dtype=torch.long, device=param.device)
    if c.cond_channels:
        kwargs["cond_image"] = torch.zeros(1, c.cond_channels, c.image_size, c.width, device=param.device)
    if c.context_dim:
        kwargs["context"] = torch.zeros(1, 1, c.context_dim, device=param.device)
    if c.aug_level:
        kwargs["aug_level"] = torch.zeros(1, device=param.device)
    with torch.no_grad():
        maps = capture_outputs(
            named, list(named), lambda: unet(x, torch.zeros(1, dtype=torch.long, device=x.device), **kwargs)
        )
    return {n: (m.shape[1], m.shape[-1]) for n, m in zip(named, maps, strict=True)}
