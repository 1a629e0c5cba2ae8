"""The receptive-field experiment's parts: garment pairs, wide U-Nets, the measured receptive field
against a hand count, and the consistency judge on hand-made pairs."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from ddpm.configuration import to_dict
from ddpm.data import load_digits
from ddpm.data.pairs import garment_pairs, pair_halves
from ddpm.eval.consistency import judge_pairs, random_pair_distance, rms_distance
from ddpm.models import UNet, UNetConfig
from ddpm.models.receptive_field import receptive_field, unet_receptive_field
from ddpm.pipelines import load_experiment_config
from ddpm.training import TrainingRun, train


def hand_counted_field(c: UNetConfig) -> int:
    """1 + Σ (k − 1)·jump along the deepest path of the U-Net: every 3×3 convolution adds 2 pixels
    times the stride product below it; nearest upsampling adds nothing."""
    levels, rf = len(c.channel_mult), 1 + 2  # input convolution
    for level in range(levels):
        rf += c.num_res_blocks * 2 * 2 * 2**level  # two convolutions per ResNet block
        if level < levels - 1:
            rf += 2 * 2**level  # the stride-2 convolution
    rf += 4 * 2 * 2 ** (levels - 1)  # the middle block's two ResNet blocks
    for level in reversed(range(levels)):
        rf += (c.num_res_blocks + 1) * 2 * 2 * 2**level
        if level > 0:
            rf += 2 * 2 ** (level - 1)  # the convolution after upsampling
    return rf + 2  # output convolution


def test_receptive_field_of_a_plain_convolution_stack():
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, 3, padding=1),
        torch.nn.Conv2d(2, 2, 3, stride=2, padding=1),
        torch.nn.Conv2d(2, 1, 3, padding=1),
    ).double()
    assert receptive_field(net, 1, 32, 32) == (9, 9)  # 1 + 2 + 2 + 2·2


@pytest.mark.parametrize(("mult", "blocks"), [((1, 2), 1), ((1, 2, 2, 2), 1), ((1, 2, 2), 2)])
def test_unet_receptive_field_matches_the_hand_count(mult, blocks):
    c = UNetConfig(
        image_size=16,
        base_channels=8,
        channel_mult=mult,
        num_res_blocks=blocks,
        attention_resolutions=(),
        mid_attention=False,
        head_channels=8,
        norm_groups=4,
    )
    assert unet_receptive_field(UNet(c)) == hand_counted_field(c)


def test_self_attention_makes_the_field_global():
    c = UNetConfig(image_size=16, base_channels=8, channel_mult=(1, 2), head_channels=8, norm_groups=4)
    assert unet_receptive_field(UNet(c)) is None


def test_garment_pairs_put_one_garment_at_both_ends():
    digits = load_digits(8)
    pairs = garment_pairs(digits)
    assert pairs.images.shape == (len(digits), 1, 8, 32)
    left, right = pair_halves(pairs.images)
    assert torch.equal(left, digits.images) and torch.equal(right, digits.images)
    assert pairs.images[..., 8:24].eq(0).all()
    assert torch.equal(pairs.labels, digits.labels)


def test_the_judge_on_hand_made_pairs():
    g = torch.Generator().manual_seed(0)
    garments = torch.rand(200, 1, 8, 8, generator=g) * 2 - 1
    reference = random_pair_distance(garments)
    assert reference == pytest.approx(float(rms_distance(garments[:100], garments[100:]).median()), rel=0.1)

    def classify(x):  # brightest half of the image decides the "class"
        return (x[..., :4].mean((1, 2, 3)) > x[..., 4:].mean((1, 2, 3))).long()

    a = garments[:4]
    b = garments[4:8].clone()
    same = judge_pairs(a, a + 0.01, classify, reference)
    assert same.consistent.all() and same.rate == 1.0
    flipped = judge_pairs(a, a.flip(-1), classify, reference)  # other class
    assert not flipped.consistent.any()
    b_same_class = torch.where(
        classify(b)[:, None, None, None] == classify(a)[:, None, None, None], b, b.flip(-1)
    )
    strangers = judge_pairs(a, b_same_class, classify, reference)  # same class, far apart
    assert strangers.same_class_rate == 1.0 and not strangers.consistent.any()
    with pytest.raises(ValueError):
        judge_pairs(a, a[..., :4], classify, reference)


def test_a_wide_unet_trains_and_samples_strips(tmp_path):
    from ddpm.pipelines import generate, load_model

    c = load_experiment_config("digits-tiny")
    model = replace(c.model, image_width=32)
    run = TrainingRun(
        model=model,
        diffusion=c.diffusion,
        train=replace(c.train, steps=2, sample_every=2, sample_steps=3, checkpoint_every=2),
        sample=c.sample,
        full_config={**to_dict(c), "model": to_dict(model)},
    )
    train(run, garment_pairs(load_digits(8)).images, tmp_path / "run", progress=False)
    loaded = load_model(tmp_path / "run")
    assert loaded.image_shape == (1, 8, 32)
    images = generate(loaded, 3, sampler=replace(loaded.config.sample, steps=4), progress=False).images
    assert images.shape == (3, 1, 8, 32)
    with pytest.raises(ValueError, match="image_width 10 is not divisible"):
        UNetConfig(image_size=8, image_width=10, channel_mult=(1, 2, 2), attention_resolutions=())
