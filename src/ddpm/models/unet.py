"""The U-Net noise predictor ε_θ(x_t, t [, y]) of DDPM (App. B), with room for conditioning.

Encoder levels of ResNet blocks (and self-attention at chosen resolutions) halve the resolution
level by level; a middle block; decoder levels mirror them, each block taking the matching encoder
activation through a skip connection. The timestep embedding is added inside every ResNet block.

Conditioning (each off unless configured):
- ``class_labels`` (B,) int: a learned class embedding added to the timestep embedding;
- ``cond_image`` (B, cond_channels, H, W): concatenated to x_t along channels;
- ``context`` (B, L, context_dim) with ``context_mask`` (B, L): cross-attention at every
  attention resolution;
- ``aug_level`` (B,) in [0, 1]: how much noise was added to ``cond_image`` (Gaussian conditioning
  augmentation of cascaded diffusion), embedded like a timestep.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.utils.checkpoint
from torch import nn

from ddpm.models.blocks import Attention, Downsample, ResBlock, Upsample, group_norm
from ddpm.models.embeddings import TimestepEmbedding, class_embedding, null_label
from ddpm.validation import (
    InvalidValue,
    require_choice,
    require_int,
    require_ints,
    require_number,
    require_positive_int,
)

# The middle block: ResNet → self-attention → ResNet (DDPM's TF code, ADM, diffusers' UNetMidBlock2D),
# or ResNet → ResNet → attention, the order of checkpoints that predate the option.
MID_BLOCK_ORDERS = ("resnet-attention-resnet", "resnet-resnet-attention")
LEGACY_MID_BLOCK_ORDER = "resnet-resnet-attention"


@dataclass
class UNetConfig:
    """Shape of the U-Net. Depth (receptive field) grows with ``len(channel_mult)``."""

    image_size: int = field(default=32, metadata={"help": "height (and width) of the images"})
    image_width: int = field(
        default=0, metadata={"help": "width of the images when it differs from the height; 0 = square"}
    )
    in_channels: int = field(default=1, metadata={"help": "image channels (1 grey, 3 RGB)"})
    out_channels: int = field(default=0, metadata={"help": "output channels; 0 = in_channels"})
    cond_channels: int = field(
        default=0, metadata={"help": "channels of a conditioning image concatenated to x_t"}
    )
    base_channels: int = field(default=64, metadata={"help": "channels at full resolution"})
    channel_mult: tuple[int, ...] = field(
        default=(1, 2, 2), metadata={"help": "width multiplier per level; each level halves H, W"}
    )
    num_res_blocks: int = field(default=2, metadata={"help": "ResNet blocks per encoder level"})
    attention_resolutions: tuple[int, ...] = field(
        default=(16,), metadata={"help": "resolutions that get self-attention"}
    )
    mid_attention: bool = field(default=True, metadata={"help": "self-attention in the middle block"})
    mid_block_order: str = field(
        default="resnet-attention-resnet",
        metadata={
            "help": "middle block: resnet-attention-resnet (as DDPM, ADM, diffusers) or "
            "resnet-resnet-attention (checkpoints made before this option)",
            "choices": MID_BLOCK_ORDERS,
        },
    )
    head_channels: int = field(
        default=32, metadata={"help": "channels per attention head; 0 = one head per attention layer"}
    )
    dropout: float = field(default=0.1, metadata={"help": "dropout inside ResNet blocks"})
    norm_groups: int = field(default=32, metadata={"help": "GroupNorm groups (gcd with the channels)"})
    norm_eps: float = field(default=1e-6, metadata={"help": "GroupNorm ε"})
    downsample_padding: int = field(
        default=1,
        metadata={
            "help": "padding of the stride-2 downsampling convolutions: 1 on every side, or 0 = one "
            "pixel right and bottom only (the original DDPM code)"
        },
    )
    time_cos_first: bool = field(
        default=True,
        metadata={"help": "timestep features [cos, sin] (true) or [sin, cos] (the original DDPM code)"},
    )
    time_frequency_shift: float = field(
        default=0.0,
        metadata={"help": "timestep frequencies 10000^(-k/(d/2 - shift)); the original DDPM code uses 1"},
    )
    num_classes: int = field(
        default=0, metadata={"help": "class labels for conditioning (plus a learned 'no label'); 0 = none"}
    )
    context_dim: int = field(default=0, metadata={"help": "width of a cross-attention context; 0 = none"})
    aug_level: bool = field(
        default=False,
        metadata={"help": "take the noise level of an augmented conditioning image (cascade SR stages)"},
    )

    def __post_init__(self) -> None:
        self.channel_mult = tuple(self.channel_mult)
        self.attention_resolutions = tuple(self.attention_resolutions)
        for name in ("image_size", "in_channels", "base_channels", "num_res_blocks"):
            require_positive_int(name, getattr(self, name))
        require_positive_int("norm_groups", self.norm_groups)
        for name in ("out_channels", "cond_channels", "num_classes", "context_dim", "image_width"):
            require_int(name, getattr(self, name), 0)
        require_int("head_channels", self.head_channels, 0)
        require_number("norm_eps", self.norm_eps, 0, 1, low_open=True)
        require_choice("mid_block_order", self.mid_block_order, MID_BLOCK_ORDERS)
        require_choice("downsample_padding", self.downsample_padding, (0, 1))
        half = self.base_channels // 2
        require_number("time_frequency_shift", self.time_frequency_shift, 0, half, high_open=True)
        require_ints("channel_mult", self.channel_mult)
        require_ints("attention_resolutions", self.attention_resolutions, allow_empty=True)
        require_number("dropout", self.dropout, 0, 1, high_open=True)
        levels = len(self.channel_mult)
        for name in ("image_size", "image_width"):
            if getattr(self, name) % 2 ** (levels - 1):
                raise ValueError(
                    f"{name} {getattr(self, name)} is not divisible by 2^{levels - 1} "
                    f"for {levels} levels; use fewer levels or another size"
                )
        resolutions = {self.image_size // 2**i: m for i, m in enumerate(self.channel_mult)}
        bad = sorted(set(self.attention_resolutions) - set(resolutions))
        if bad:
            raise InvalidValue(
                "attention_resolutions", f"must be among the U-Net's resolutions {sorted(resolutions)}", bad
            )
        widths = {self.base_channels * resolutions[r] for r in self.attention_resolutions}
        if self.mid_attention or self.context_dim:
            widths.add(self.base_channels * self.channel_mult[-1])
        if self.head_channels and any(w % self.head_channels for w in widths):
            raise InvalidValue(
                "head_channels",
                f"must divide the width of every attention layer {sorted(widths)}",
                self.head_channels,
            )

    @property
    def output_channels(self) -> int:
        return self.out_channels or self.in_channels

    @property
    def width(self) -> int:
        """Width of the images (``image_width``, or ``image_size`` for square ones)."""
        return self.image_width or self.image_size


class UNetLayer(nn.Module):
    """A ResNet block, optionally followed by self-attention and cross-attention."""

    def __init__(self, res: ResBlock, attn: Attention | None, cross: Attention | None):
        super().__init__()
        self.res, self.attn, self.cross = res, attn, cross

    def forward(self, x, emb, context=None, context_mask=None):
        x = self.res(x, emb)
        if self.attn is not None:
            x = self.attn(x)
        if self.cross is not None:
            x = self.cross(x, context, context_mask)
        return x


class UNet(nn.Module):
    """ε_θ: (x_t (B, C, H, W), t (B,)) → tensor of x_t's shape (with ``out_channels`` channels)."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = c = config
        self.gradient_checkpointing = False  # recompute each layer in the backward pass (saves memory)
        ch = c.base_channels
        emb_dim = 4 * ch
        time_features = {"cos_first": c.time_cos_first, "frequency_shift": c.time_frequency_shift}
        self.time_embed = TimestepEmbedding(ch, emb_dim, **time_features)
        # with a learned row for the "no label" index that classifier-free guidance uses
        self.class_embed = class_embedding(c.num_classes, emb_dim) if c.num_classes else None
        # the noise level s ∈ [0, 1] of an augmented conditioning image, embedded like a timestep
        self.aug_embed = TimestepEmbedding(ch, emb_dim, **time_features) if c.aug_level else None

        def resnet(in_ch: int, out_ch: int) -> ResBlock:
            return ResBlock(in_ch, out_ch, emb_dim, c.dropout, c.norm_groups, c.norm_eps)

        def attention(channels: int, context_dim: int | None = None) -> Attention:
            return Attention(channels, c.head_channels, c.norm_groups, context_dim, c.norm_eps)

        def layer(in_ch: int, out_ch: int, res: int) -> UNetLayer:
            attn = res in c.attention_resolutions
            return UNetLayer(
                resnet(in_ch, out_ch),
                attention(out_ch) if attn else None,
                attention(out_ch, c.context_dim) if attn and c.context_dim else None,
            )

        self.in_conv = nn.Conv2d(c.in_channels + c.cond_channels, ch, 3, padding=1)
        self.down = nn.ModuleList()
        skip_channels, cur, res = [ch], ch, c.image_size
        for level, mult in enumerate(c.channel_mult):
            for _ in range(c.num_res_blocks):
                self.down.append(layer(cur, ch * mult, res))
                cur = ch * mult
                skip_channels.append(cur)
            if level < len(c.channel_mult) - 1:
                self.down.append(Downsample(cur, c.downsample_padding))
                skip_channels.append(cur)
                res //= 2

        # the middle block: its attention layers follow its first ResNet block, or its second
        def mid_layer(attending: bool) -> UNetLayer:
            return UNetLayer(
                resnet(cur, cur),
                attention(cur) if attending and c.mid_attention else None,
                attention(cur, c.context_dim) if attending and c.context_dim else None,
            )

        legacy = c.mid_block_order == LEGACY_MID_BLOCK_ORDER
        self.mid = nn.ModuleList([mid_layer(not legacy), mid_layer(legacy)])

        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(c.channel_mult))):
            for _ in range(c.num_res_blocks + 1):
                self.up.append(layer(cur + skip_channels.pop(), ch * mult, res))
                cur = ch * mult
            if level > 0:
                self.up.append(Upsample(cur))
                res *= 2

        self.out_norm = group_norm(cur, c.norm_groups, c.norm_eps)
        self.out_conv = nn.Conv2d(cur, c.output_channels, 3, padding=1)
        nn.init.zeros_(self.out_conv.weight)
        nn.init.zeros_(self.out_conv.bias)

    def _run_layer(self, layer, *args):
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            return _checkpointed(layer, *args)
        return layer(*args)

    @property
    def null_class(self) -> int:
        """The label index meaning "no label" (classifier-free guidance's unconditional branch)."""
        return null_label(self.config.num_classes)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        *,
        class_labels: torch.Tensor | None = None,
        cond_image: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
        aug_level: torch.Tensor | None = None,
    ) -> torch.Tensor:
        c = self.config
        t = torch.as_tensor(t, device=x.device)
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        emb = self.time_embed(t)
        if (class_labels is None) != (self.class_embed is None):
            raise ValueError("class_labels must be given exactly when the model has num_classes > 0")
        if self.class_embed is not None:
            emb = emb + self.class_embed(class_labels)
        if (aug_level is None) != (self.aug_embed is None):
            raise ValueError("aug_level must be given exactly when the model has aug_level = true")
        if self.aug_embed is not None:
            emb = emb + self.aug_embed(aug_level * 1000)
        if (cond_image is None) != (c.cond_channels == 0):
            raise ValueError("cond_image must be given exactly when the model has cond_channels > 0")
        if cond_image is not None:
            x = torch.cat([x, cond_image.to(x.dtype)], dim=1)
        if (context is None) != (c.context_dim == 0):
            raise ValueError("context must be given exactly when the model has context_dim > 0")

        run = self._run_layer
        h = self.in_conv(x)
        skips = [h]
        for block in self.down:
            h = block(h) if isinstance(block, Downsample) else run(block, h, emb, context, context_mask)
            skips.append(h)
        for block in self.mid:
            h = run(block, h, emb, context, context_mask)
        for block in self.up:
            if isinstance(block, Upsample):
                h = block(h)
            else:
                h = run(block, torch.cat([h, skips.pop()], dim=1), emb, context, context_mask)
        return self.out_conv(torch.nn.functional.silu(self.out_norm(h)))


def reorder_mid_block(state: dict[str, torch.Tensor], source: str, target: str) -> dict[str, torch.Tensor]:
    """Weights of a U-Net whose middle block runs in order ``source``, renamed for one that runs in
    order ``target`` (:data:`MID_BLOCK_ORDERS`): the attention layers move from after the second ResNet
    block to after the first (or back). The network this makes computes something else (the layers
    run in another order), so it is a starting point for fine-tuning, not a conversion."""
    if source == target:
        return dict(state)
    before, after = ("mid.1.", "mid.0.") if source == LEGACY_MID_BLOCK_ORDER else ("mid.0.", "mid.1.")
    out = {}
    for name, tensor in state.items():
        for part in ("attn.", "cross."):
            if name.startswith(before + part):
                name = after + name[len(before) :]
        out[name] = tensor
    return out


def _checkpointed(layer, *args):
    return torch.utils.checkpoint.checkpoint(layer, *args, use_reentrant=False)


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (frozen ones included)."""
    return sum(p.numel() for p in model.parameters())
