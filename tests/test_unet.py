import math

import pytest
import torch

from ddpm.models import UNet, UNetConfig, count_parameters
from ddpm.models.embeddings import sinusoidal_embedding


@pytest.mark.parametrize(
    "config",
    [
        UNetConfig(
            image_size=8, base_channels=16, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(4,)
        ),
        UNetConfig(
            image_size=32, base_channels=32, channel_mult=(1, 2, 2, 2), num_res_blocks=1, norm_groups=8
        ),
        UNetConfig(
            image_size=16,
            in_channels=3,
            base_channels=16,
            channel_mult=(1, 2, 3),
            num_res_blocks=2,
            attention_resolutions=(16, 8),
            mid_attention=False,
            head_channels=8,
        ),
        UNetConfig(
            image_size=12,
            in_channels=3,
            out_channels=6,
            base_channels=8,
            channel_mult=(1, 1, 2),
            num_res_blocks=1,
            attention_resolutions=(),
            norm_groups=4,
            head_channels=8,
        ),
    ],
)
def test_output_has_the_input_shape(config):
    model = UNet(config)
    x = torch.randn(2, config.in_channels, config.image_size, config.image_size)
    out = model(x, torch.tensor([0, 999]))
    assert out.shape == (2, config.output_channels, config.image_size, config.image_size)
    assert count_parameters(model) > 0


def _nonzero_init(model):
    """Zero-initialised output layers make the untrained U-Net output 0; perturb them for tests."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model


def _corner_sees_far_corner(**kwargs) -> bool:
    """Does output pixel (0, 0) depend on input pixel (−1, −1)? GroupNorm is made the identity here,
    since its statistics couple all pixels and would hide the convolutional receptive field."""
    cfg = UNetConfig(
        in_channels=1,
        base_channels=8,
        num_res_blocks=1,
        norm_groups=1,
        dropout=0.0,
        head_channels=8,
        **kwargs,
    )
    model = _nonzero_init(UNet(cfg)).double()
    for m in model.modules():
        if isinstance(m, torch.nn.GroupNorm):
            m.forward = lambda x: x
    x = torch.randn(1, 1, cfg.image_size, cfg.image_size, dtype=torch.float64, requires_grad=True)
    model(x, torch.tensor([10]))[0, 0, 0, 0].backward()
    return x.grad[0, 0, -1, -1].abs().item() > 0


def test_depth_sets_the_receptive_field():
    """The seed's pitfall: a shallow U-Net sees only local context; more levels see the whole image."""
    common = dict(image_size=32, attention_resolutions=(), mid_attention=False)
    assert not _corner_sees_far_corner(channel_mult=(1, 1), **common)
    assert _corner_sees_far_corner(channel_mult=(1, 1, 1, 1), **common)


def test_attention_gives_global_context_even_when_shallow():
    common = dict(image_size=32, channel_mult=(1, 1), mid_attention=False)
    assert not _corner_sees_far_corner(attention_resolutions=(), **common)
    assert _corner_sees_far_corner(attention_resolutions=(16,), **common)


def test_conditioning_inputs():
    cfg = UNetConfig(
        image_size=8,
        base_channels=16,
        channel_mult=(1, 2),
        num_res_blocks=1,
        attention_resolutions=(4,),
        head_channels=8,
        num_classes=10,
        cond_channels=3,
        context_dim=12,
        dropout=0.0,
    )
    model = _nonzero_init(UNet(cfg)).eval()
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([5, 500])
    y, img = torch.tensor([3, 7]), torch.randn(2, 3, 8, 8)
    ctx, mask = torch.randn(2, 5, 12), torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    out = model(x, t, class_labels=y, cond_image=img, context=ctx, context_mask=mask)
    assert out.shape == x.shape
    # each input matters ...
    assert not torch.allclose(
        out, model(x, t, class_labels=y.flip(0), cond_image=img, context=ctx, context_mask=mask)
    )
    assert not torch.allclose(
        out, model(x, t, class_labels=y, cond_image=-img, context=ctx, context_mask=mask)
    )
    # ... but padded context tokens do not
    ctx2 = ctx.clone()
    ctx2[0, 3:] = 100.0
    assert torch.allclose(
        out, model(x, t, class_labels=y, cond_image=img, context=ctx2, context_mask=mask), atol=1e-6
    )
    with pytest.raises(ValueError, match="class_labels"):
        model(x, t, cond_image=img, context=ctx)


def test_untrained_model_predicts_zero():
    model = UNet(UNetConfig(image_size=8, base_channels=16, channel_mult=(1, 2), attention_resolutions=()))
    assert torch.count_nonzero(model(torch.randn(2, 1, 8, 8), torch.tensor([1, 2]))) == 0


def test_sinusoidal_embedding_values():
    t = torch.tensor([0.0, 1.0, 250.0])
    e = sinusoidal_embedding(t, 8)
    assert e.shape == (3, 8)
    assert torch.allclose(e[0], torch.tensor([1.0] * 4 + [0.0] * 4))
    freqs = [10_000 ** (-k / 4) for k in range(4)]
    expected = [math.cos(250 * f) for f in freqs] + [math.sin(250 * f) for f in freqs]
    assert torch.allclose(e[2], torch.tensor(expected), atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(image_size=30, channel_mult=(1, 2, 2)), "not divisible"),
        (dict(attention_resolutions=(7,)), "attention_resolutions"),
        (dict(channel_mult=()), "channel_mult"),
        (dict(num_res_blocks=0), "num_res_blocks"),
    ],
)
def test_bad_shapes_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        UNetConfig(**kwargs)
