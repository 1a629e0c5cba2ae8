"""Our U-Net as diffusers' ``UNet2DModel`` and back: the configuration and the weight names.

The two networks are the same computation when the U-Net's options map one to one: the DDPM / ADM
layout (levels of ResNet blocks, attention at chosen levels, a middle block ResNet → attention →
ResNet), sinusoidal timestep features, GroupNorm with a fixed group count, an optional class table.
Everything else (concatenated or cross-attention conditioning, other block types, scale-shift norms)
is refused with a message, never approximated. Tensors are copied, never changed, except our
attention's fused key/value projection, which diffusers stores as two matrices.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch

from ddpm.errors import UserError
from ddpm.models.unet import LEGACY_MID_BLOCK_ORDER, UNet, UNetConfig

DIFFUSERS_VERSION = "0.30.0"  # the oldest diffusers whose UNet2DModel reads these configurations
# marks a class table with our extra "no label" row (classifier-free guidance); diffusers ignores
# configuration keys that start with "_"
NULL_LABEL_KEY = "_ddpm_null_label"

RESNET = {"norm1": "norm1", "conv1": "conv1", "emb": "time_emb_proj", "norm2": "norm2", "conv2": "conv2"}
RESNET_SKIP = ("skip", "conv_shortcut")
ATTENTION = {"norm": "group_norm", "q": "to_q", "out": "to_out.0"}
# attention weight names of checkpoints written before diffusers 0.14
OLD_ATTENTION = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}


def _blocks(c: UNetConfig) -> Iterator[tuple[str, str, str]]:
    """(our prefix, their prefix, kind) for every block, kind ∈ {resnet, attention, conv}."""
    levels = len(c.channel_mult)
    res, ours = c.image_size, 0
    for level in range(levels):
        attn = res in c.attention_resolutions
        for j in range(c.num_res_blocks):
            yield f"down.{ours}.res", f"down_blocks.{level}.resnets.{j}", "resnet"
            if attn:
                yield f"down.{ours}.attn", f"down_blocks.{level}.attentions.{j}", "attention"
            ours += 1
        if level < levels - 1:
            yield f"down.{ours}.conv", f"down_blocks.{level}.downsamplers.0.conv", "conv"
            ours += 1
            res //= 2
    first, second = (1, 0) if c.mid_block_order == LEGACY_MID_BLOCK_ORDER else (0, 1)
    yield f"mid.{first}.res", "mid_block.resnets.0", "resnet"
    if c.mid_attention:
        yield f"mid.{first}.attn", "mid_block.attentions.0", "attention"
    yield f"mid.{second}.res", "mid_block.resnets.1", "resnet"
    ours = 0
    for i, level in enumerate(reversed(range(levels))):
        attn = res in c.attention_resolutions
        for j in range(c.num_res_blocks + 1):
            yield f"up.{ours}.res", f"up_blocks.{i}.resnets.{j}", "resnet"
            if attn:
                yield f"up.{ours}.attn", f"up_blocks.{i}.attentions.{j}", "attention"
            ours += 1
        if level > 0:
            yield f"up.{ours}.conv", f"up_blocks.{i}.upsamplers.0.conv", "conv"
            ours += 1
            res *= 2
    yield "in_conv", "conv_in", "conv"
    yield "time_embed.mlp.0", "time_embedding.linear_1", "conv"
    yield "time_embed.mlp.2", "time_embedding.linear_2", "conv"
    yield "out_norm", "conv_norm_out", "conv"
    yield "out_conv", "conv_out", "conv"


def _name_pairs(c: UNetConfig, ours: Iterable[str]) -> Iterator[tuple[str, str]]:
    """(our tensor name, their tensor name) for every tensor but the fused key/value ones; ``ours``
    holds our tensor names (a ResNet block has a 1×1 skip convolution only where widths change)."""
    ours = set(ours)
    for mine, theirs, kind in _blocks(c):
        parts = {"": ""} if kind == "conv" else dict(RESNET if kind == "resnet" else ATTENTION)
        if kind == "resnet":
            parts[RESNET_SKIP[0]] = RESNET_SKIP[1]
        for a, b in parts.items():
            for p in ("weight", "bias"):
                name = f"{mine}.{a}.{p}" if a else f"{mine}.{p}"
                if kind != "resnet" or a != RESNET_SKIP[0] or name in ours:  # the skip is optional
                    yield name, f"{theirs}.{b}.{p}" if b else f"{theirs}.{p}"
    if c.num_classes:
        yield "class_embed.weight", "class_embedding.weight"


def _check_exportable(model: UNet) -> None:
    c = model.config
    why = None
    if c.cond_channels or c.context_dim or c.aug_level:
        why = (
            "it is conditioned on an image or a text (UNet2DModel takes only x_t, t and a class label); "
            "export unconditional and class-conditional models"
        )
    elif c.channel_mult[0] != 1:
        why = f"its first level is {c.channel_mult[0]}× the base width (UNet2DModel's is 1×)"
    elif c.mid_attention and c.mid_block_order == LEGACY_MID_BLOCK_ORDER:
        why = (
            "its middle block runs ResNet → ResNet → attention (model.mid_block_order = "
            f"{LEGACY_MID_BLOCK_ORDER}) and diffusers' runs ResNet → attention → ResNet; train or "
            "fine-tune it with model.mid_block_order = resnet-attention-resnet"
        )
    else:
        norms = [m for m in model.modules() if isinstance(m, torch.nn.GroupNorm)]
        odd = sorted({m.num_channels for m in norms if m.num_groups != c.norm_groups})
        if odd:
            why = f"norm_groups {c.norm_groups} does not divide its widths {odd} (diffusers needs it to)"
    if why:
        raise UserError(f"this model cannot be written as a diffusers UNet2DModel: {why}")


def unet_to_diffusers(model: UNet) -> tuple[dict, dict[str, torch.Tensor]]:
    """``UNet2DModel`` configuration and weights computing exactly what ``model`` computes."""
    _check_exportable(model)
    c = model.config
    ours = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    state = {theirs: ours[mine] for mine, theirs in _name_pairs(c, ours)}
    for mine, theirs, kind in _blocks(c):
        if kind == "attention":
            k, v = ours[f"{mine}.kv.weight"].chunk(2), ours[f"{mine}.kv.bias"].chunk(2)
            state[f"{theirs}.to_k.weight"], state[f"{theirs}.to_v.weight"] = (t.contiguous() for t in k)
            state[f"{theirs}.to_k.bias"], state[f"{theirs}.to_v.bias"] = (t.contiguous() for t in v)
    levels = range(len(c.channel_mult))
    resolution = [c.image_size // 2**i for i in levels]
    attends = [r in c.attention_resolutions for r in resolution]
    shift = c.time_frequency_shift
    config = {
        "_class_name": "UNet2DModel",
        "_diffusers_version": DIFFUSERS_VERSION,
        "sample_size": c.image_size if not c.image_width else [c.image_size, c.image_width],
        "in_channels": c.in_channels,
        "out_channels": c.output_channels,
        "center_input_sample": False,
        "time_embedding_type": "positional",
        "flip_sin_to_cos": c.time_cos_first,
        "freq_shift": int(shift) if float(shift).is_integer() else shift,
        "down_block_types": ["AttnDownBlock2D" if a else "DownBlock2D" for a in attends],
        "up_block_types": ["AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attends)],
        "block_out_channels": [c.base_channels * m for m in c.channel_mult],
        "layers_per_block": c.num_res_blocks,
        "mid_block_type": "UNetMidBlock2D",
        "mid_block_scale_factor": 1,
        "downsample_padding": c.downsample_padding,
        "downsample_type": "conv",
        "upsample_type": "conv",
        "dropout": c.dropout,
        "act_fn": "silu",
        "attention_head_dim": c.head_channels or None,
        "norm_num_groups": c.norm_groups,
        "attn_norm_num_groups": None,
        "norm_eps": c.norm_eps,
        "resnet_time_scale_shift": "default",
        "add_attention": c.mid_attention,
        "class_embed_type": None,
        "num_class_embeds": c.num_classes + 1 if c.num_classes else None,
    }
    if c.num_classes:
        config[NULL_LABEL_KEY] = c.num_classes
    return config, state


# UNet2DModel options and the only values that map onto our U-Net
FIXED = {
    "center_input_sample": False,
    "time_embedding_type": "positional",
    "mid_block_type": "UNetMidBlock2D",
    "mid_block_scale_factor": 1,
    "downsample_type": "conv",
    "upsample_type": "conv",
    "act_fn": "silu",
    "resnet_time_scale_shift": "default",
    "class_embed_type": None,
}


def unet_config_from_diffusers(config: dict) -> UNetConfig:
    """Our :class:`UNetConfig` for a ``UNet2DModel`` configuration (``unet/config.json``)."""
    kind = config.get("_class_name", "UNet2DModel")
    if kind != "UNet2DModel":
        raise UserError(f"{kind} folders are not supported; ddpm reads diffusers UNet2DModel networks")
    for key, value in FIXED.items():
        if config.get(key, value) != value:
            raise UserError(
                f"this UNet2DModel has {key} = {config[key]!r}; ddpm's U-Net supports only {value!r}"
            )
    widths = list(config.get("block_out_channels", (224, 448, 672, 896)))
    down = list(config.get("down_block_types", ("DownBlock2D",) + ("AttnDownBlock2D",) * 3))
    up = list(config.get("up_block_types", ("AttnUpBlock2D",) * 3 + ("UpBlock2D",)))
    attends = [t == "AttnDownBlock2D" for t in down]
    known = {"DownBlock2D", "AttnDownBlock2D", "UpBlock2D", "AttnUpBlock2D"}
    unknown = sorted((set(down) | set(up)) - known)
    if unknown:
        raise UserError(f"block types {unknown} are not supported ({', '.join(sorted(known))})")
    if ["AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attends)] != up:
        raise UserError("this UNet2DModel attends at different levels going down and up; not supported")
    base = widths[0]
    if any(w % base for w in widths):
        raise UserError(f"block_out_channels {widths} are not whole multiples of the first; not supported")
    if config.get("time_embedding_dim") not in (None, 4 * base):
        raise UserError(f"time_embedding_dim {config['time_embedding_dim']} ≠ 4 × {base}; not supported")
    groups = config.get("norm_num_groups", 32)
    if config.get("attn_norm_num_groups") not in (None, groups):
        raise UserError("attn_norm_num_groups differs from norm_num_groups; not supported")
    size = config.get("sample_size")
    if size is None:
        raise UserError("this UNet2DModel configuration has no sample_size; add it to config.json")
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    padding = config.get("downsample_padding", 1)
    if padding not in (0, 1):
        raise UserError(f"this UNet2DModel has downsample_padding = {padding}; ddpm supports 0 and 1")
    head = config.get("attention_head_dim", 8)
    in_channels, out_channels = config.get("in_channels", 3), config.get("out_channels", 3)
    classes = config.get("num_class_embeds") or 0
    null_label = config.get(NULL_LABEL_KEY)
    return UNetConfig(
        image_size=height,
        image_width=width if width != height else 0,
        in_channels=in_channels,
        out_channels=0 if out_channels == in_channels else out_channels,
        base_channels=base,
        channel_mult=tuple(w // base for w in widths),
        num_res_blocks=config.get("layers_per_block", 2),
        attention_resolutions=tuple(height // 2**i for i, a in enumerate(attends) if a),
        mid_attention=config.get("add_attention", True),
        head_channels=head or 0,
        dropout=config.get("dropout", 0.0),
        norm_groups=groups,
        norm_eps=config.get("norm_eps", 1e-5),
        downsample_padding=padding,
        time_cos_first=config.get("flip_sin_to_cos", True),
        time_frequency_shift=config.get("freq_shift", 0),
        # a class table without our "no label" row gains one (zeros): guidance needs a trained one
        num_classes=null_label if null_label is not None else classes,
    )


def unet_state_from_diffusers(
    c: UNetConfig, state: dict[str, torch.Tensor], null_row: bool
) -> dict[str, torch.Tensor]:
    """Our U-Net's weights from a ``UNet2DModel``'s (either generation of attention names).
    ``null_row`` False: the class table lacks our "no label" row, which is added as zeros."""
    theirs = {}
    for name, tensor in state.items():
        for old, new in OLD_ATTENTION.items():
            name = name.replace(f".{old}.", f".{new}.")
        theirs[name] = tensor
    with torch.device("meta"):  # our tensor names, without allocating the network
        names = UNet(c).state_dict().keys()
    out = {}
    for mine, name in _name_pairs(c, names):
        if name not in theirs:
            raise UserError(f"the diffusers weights lack {name}; is the folder complete?")
        out[mine] = theirs.pop(name)
    for mine, name, kind in _blocks(c):
        if kind == "attention":
            for p in ("weight", "bias"):
                k, v = theirs.pop(f"{name}.to_k.{p}"), theirs.pop(f"{name}.to_v.{p}")
                out[f"{mine}.kv.{p}"] = torch.cat([k, v])
    if c.num_classes and not null_row:
        table = out["class_embed.weight"]
        out["class_embed.weight"] = torch.cat([table, table.new_zeros(1, table.shape[1])])
    if theirs:
        extra = ", ".join(sorted(theirs)[:3])
        raise UserError(f"the diffusers weights hold tensors this configuration does not use: {extra}")
    return out
