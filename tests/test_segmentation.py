"""Segmentation from diffusion features: hooks, features, the MLP head, mIoU, and the commands."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from ddpm.checkpoints import write_checkpoint
from ddpm.cli.main import main
from ddpm.configuration import to_dict
from ddpm.eval.segmentation import confusion_matrix, iou_per_class, mean_iou
from ddpm.models import UNet, UNetConfig
from ddpm.models.segmentation_head import PixelHeadConfig
from ddpm.models.unet_features import (
    block_channels,
    capture_outputs,
    diffusion_features,
    fixed_noise,
    unet_blocks,
)
from ddpm.pipelines import load_experiment_config
from ddpm.pipelines.part_maps import colour_parts, part_map_picture
from ddpm.pipelines.segmentation import FeatureSpec, model_feature_fn, raw_pixel_features
from ddpm.process.config import DiffusionConfig
from ddpm.process.forward import q_sample
from ddpm.schedules import make_schedule
from ddpm.training.segmentation import (
    PixelTrainConfig,
    balanced_class_weights,
    flip_and_crop,
    train_pixel_classifier,
)

TINY = UNetConfig(
    image_size=16,
    in_channels=3,
    base_channels=8,
    channel_mult=(1, 2),
    num_res_blocks=1,
    attention_resolutions=(8,),
    head_channels=8,
    norm_groups=4,
)


def tiny_unet(seed: int = 0) -> UNet:
    torch.manual_seed(seed)
    unet = UNet(TINY).eval()
    torch.nn.init.normal_(unet.out_conv.weight, std=0.1)  # a trained network's output is not zero
    return unet


def test_block_names_and_shapes_for_every_block():
    unet = tiny_unet()
    shapes = block_channels(unet)
    # one ResNet layer per level going down, the middle's two, two per level coming up
    assert list(shapes) == ["enc0", "enc1", "mid0", "mid1", "dec0", "dec1", "dec2", "dec3"]
    assert shapes == {
        "enc0": (8, 16),
        "enc1": (16, 8),
        "mid0": (16, 8),
        "mid1": (16, 8),
        "dec0": (16, 8),
        "dec1": (16, 8),
        "dec2": (8, 16),
        "dec3": (8, 16),
    }
    schedule = make_schedule(DiffusionConfig())
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    for name, (channels, _) in shapes.items():
        feats = diffusion_features(unet, x, schedule, [10, 100], [name])
        assert feats.shape == (3, 2 * channels, 16, 16)


def test_hook_captures_the_tensor_the_network_computes():
    """The last decoder block's output, put through the output head by hand, is the U-Net's output."""
    unet = tiny_unet()
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([5, 500])
    out = {}
    (h,) = capture_outputs(unet_blocks(unet), ["dec3"], lambda: out.setdefault("y", unet(x, t)))
    by_hand = unet.out_conv(torch.nn.functional.silu(unet.out_norm(h)))
    torch.testing.assert_close(by_hand, out["y"])
    assert not unet.down[0]._forward_hooks  # hooks are removed after the call


def test_features_are_the_noised_activations_and_deterministic():
    unet = tiny_unet()
    schedule = make_schedule(DiffusionConfig())
    x = torch.rand(5, 3, 16, 16) * 2 - 1
    a = diffusion_features(unet, x, schedule, [50, 250], ["enc1", "dec2"], seed=3, chunk=2)
    b = diffusion_features(unet, x, schedule, [50, 250], ["enc1", "dec2"], seed=3, chunk=5)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)  # same seed, any chunking: same features
    alone = diffusion_features(unet, x[3:4], schedule, [50, 250], ["enc1", "dec2"], seed=3)
    torch.testing.assert_close(alone, a[3:4], rtol=1e-5, atol=1e-5)  # independent of the batch
    other = diffusion_features(unet, x, schedule, [50, 250], ["enc1", "dec2"], seed=4)
    assert (other - a).abs().max() > 1e-3
    # by hand: x_t from the fixed noise, one forward pass, the enc1 map upsampled bilinearly
    eps = fixed_noise((3, 16, 16), [50, 250], 1, 3)[0, 1]
    xt = q_sample(x, 250, schedule, eps.expand_as(x))
    (h,) = capture_outputs(unet_blocks(unet), ["enc1"], lambda: unet(xt, torch.full((5,), 250)))
    up = torch.nn.functional.interpolate(h, size=(16, 16), mode="bilinear")
    torch.testing.assert_close(a[:, 8 + 16 : 8 + 32], up, rtol=1e-5, atol=1e-5)


def test_several_draws_average_the_features():
    unet = tiny_unet()
    schedule = make_schedule(DiffusionConfig())
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    two = diffusion_features(unet, x, schedule, [100], ["dec1"], draws=2, seed=7)
    noise = fixed_noise((3, 16, 16), [100], 2, 7)
    maps = []
    for d in range(2):
        xt = q_sample(x, 100, schedule, noise[d, 0].expand_as(x))
        (h,) = capture_outputs(unet_blocks(unet), ["dec1"], lambda xt=xt: unet(xt, torch.full((2,), 100)))
        maps.append(torch.nn.functional.interpolate(h, size=(16, 16), mode="bilinear"))
    torch.testing.assert_close(two, (maps[0] + maps[1]) / 2, rtol=1e-5, atol=1e-5)


def test_features_upsample_to_a_larger_image_size():
    unet = tiny_unet()
    feats = diffusion_features(
        unet, torch.zeros(1, 3, 16, 16), make_schedule(DiffusionConfig()), [0], ["mid1"], size=64
    )
    assert feats.shape == (1, 16, 64, 64)


def test_bad_blocks_and_timesteps_are_refused():
    unet = tiny_unet()
    schedule = make_schedule(DiffusionConfig())
    with pytest.raises(ValueError, match="unknown block"):
        diffusion_features(unet, torch.zeros(1, 3, 16, 16), schedule, [0], ["dec9"])
    with pytest.raises(ValueError, match="outside"):
        diffusion_features(unet, torch.zeros(1, 3, 16, 16), schedule, [1000], ["dec0"])


def test_miou_against_a_hand_computed_example():
    # classes 0..3; class 3 appears nowhere; class 2 is predicted but absent from the truth
    target = torch.tensor([[0, 0, 1], [1, 1, 0]])
    pred = torch.tensor([[0, 1, 1], [1, 2, 0]])
    conf = confusion_matrix(pred, target, 4)
    assert conf.tolist() == [[2, 1, 0, 0], [0, 2, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    iou = iou_per_class(conf)
    # class 0: TP 2, FP 0, FN 1 → 2/3; class 1: TP 2, FP 1, FN 1 → 2/4; class 2: 0/1; class 3: undefined
    assert iou[:3].tolist() == pytest.approx([2 / 3, 0.5, 0.0])
    assert math.isnan(iou[3])
    assert mean_iou(conf) == pytest.approx((2 / 3 + 0.5 + 0.0) / 3)
    assert mean_iou(confusion_matrix(target, target, 4)) == 1.0


def test_miou_refuses_labels_out_of_range():
    with pytest.raises(ValueError, match="lie in"):
        confusion_matrix(torch.tensor([4]), torch.tensor([0]), 4)


def test_balanced_weights_give_each_present_class_equal_total_weight():
    labels = torch.tensor([0] * 90 + [1] * 9 + [3])
    w = balanced_class_weights(labels, 4)
    totals = w * torch.bincount(labels, minlength=4)
    assert totals[[0, 1, 3]].tolist() == pytest.approx([100 / 3] * 3)
    assert w[2] == 0


def test_pixel_classifier_learns_a_separable_problem():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (3000,), generator=g)
    centres = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]]) * 10  # large scale: normalisation matters
    x = centres[y] + torch.randn(3000, 2, generator=g) * 5
    head = PixelHeadConfig(in_features=2, num_classes=3, hidden=(32,), members=2)
    clf = train_pixel_classifier(x, y, head, PixelTrainConfig(steps=150, batch_size=256), progress=False)
    accuracy = (clf.probabilities(x).argmax(-1) == y).float().mean()
    assert accuracy > 0.97
    assert clf.probabilities(x).sum(-1).allclose(torch.ones(3000))


def test_flip_and_crop_keep_images_and_labels_aligned():
    labels = torch.zeros(4, 32, 32, dtype=torch.long)
    labels[:, 8:24, 4:14] = 1
    labels[:, 2:10, 20:30] = 2
    images = (labels.float() - 1)[:, None].expand(4, 3, 32, 32).clone()  # colour = label
    x, y = flip_and_crop(images, labels, 0.6, torch.Generator().manual_seed(1))
    from_colour = (x[:, 0] + 1).round().long()
    assert (from_colour == y).float().mean() > 0.95  # only resampled edges may differ
    assert not torch.equal(y, labels)  # something moved


def test_raw_pixel_features_hold_the_colour_and_position():
    images = torch.rand(2, 3, 8, 8) * 2 - 1
    feats = raw_pixel_features(3)(images)
    assert feats.shape == (2, 3 * 9 + 2, 8, 8)
    torch.testing.assert_close(feats[:, [4, 13, 22]], images)  # the centre of each 3×3 patch
    assert feats[0, -2, 0, 0] == -1 and feats[0, -1, 0, 7] == 1


def test_part_map_picture_has_a_legend_of_the_parts_present():
    labels = torch.zeros(16, 16, dtype=torch.long)
    labels[4:8, 4:8] = 2
    assert colour_parts(labels, 11)[5, 5].tolist() == [30, 110, 255]
    picture = part_map_picture(torch.zeros(3, 16, 16), labels, ("background", "skin", "eyes"), scale=4)
    assert picture.width > 64 and picture.height >= 64
    overlay = part_map_picture(torch.ones(3, 16, 16), labels, ("background", "skin", "eyes"), overlay=True)
    assert overlay.getpixel((0, 0)) != (0, 0, 0)  # white image under black background shows through


# --- end to end, through the command line -------------------------------------------------------


def fake_faces(root, size: int = 16, num: int = 40) -> None:
    """A faces-like data set: coloured squares of three parts on a dark background."""
    rng = np.random.default_rng(0)
    images = np.zeros((num, size, size, 3), np.uint8)
    labels = np.zeros((num, size, size), np.uint8)
    colours = {1: (230, 180, 140), 2: (40, 90, 220), 6: (120, 60, 20)}
    for i in range(num):
        for part, colour in colours.items():
            top, left = rng.integers(0, size - 5, 2)
            images[i, top : top + 5, left : left + 5] = colour
            labels[i, top : top + 5, left : left + 5] = part
    root.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(root / f"faces-{size}.npz", images=images, labels=labels, style=np.zeros(num))


def tiny_model(path, seed: int = 0):
    config = load_experiment_config("faces")
    config.model = replace(TINY)
    config.data = replace(config.data, image_size=16)
    write_checkpoint(
        path, {"ema": tiny_unet(seed).state_dict()}, {"kind": "inference", "config": to_dict(config)}
    )
    return path


def test_segment_train_and_segment_through_the_command_line(tmp_path, capsys):
    fake_faces(tmp_path / "faces")
    model = tiny_model(tmp_path / "model")
    head = tmp_path / "head"
    args = ["segment-train", str(model), "--out", str(head), "--data-path", str(tmp_path / "faces")]
    args += ["--labelled", "8", "--eval-num", "4", "--steps", "30", "--members", "2", "--blocks", "enc0,dec3"]
    assert main(args + ["--timesteps", "10,100"]) == 0
    assert "held-out mIoU" in capsys.readouterr().out
    face = tmp_path / "face.png"
    Image.fromarray(np.load(tmp_path / "faces" / "faces-16.npz")["images"][-1]).save(face)
    out, ids = tmp_path / "parts.png", tmp_path / "ids.png"
    # the head names its model; the model with --head works the same
    assert (
        main(["segment", str(head), "--input", str(face), "--out", str(out), "--labels-out", str(ids)]) == 0
    )
    first = np.asarray(Image.open(ids))
    assert first.shape == (16, 16) and first.max() <= 10
    assert Image.open(out).width > 16 * 8  # the legend sits to the right
    again = tmp_path / "again.png"
    cmd = ["segment", str(model), "--head", str(head), "--input", str(face), "--out", str(again), "--overlay"]
    assert main(cmd + ["--labels-out", str(ids)]) == 0
    assert np.array_equal(np.asarray(Image.open(ids)), first)  # deterministic


def test_segment_errors_are_one_line(tmp_path, capsys):
    fake_faces(tmp_path / "faces")
    model = tiny_model(tmp_path / "model")
    other = tiny_model(tmp_path / "other", seed=1)
    head = tmp_path / "head"
    args = ["segment-train", str(model), "--out", str(head), "--data-path", str(tmp_path / "faces")]
    assert main(args + ["--labelled", "4", "--eval-num", "0", "--steps", "5", "--members", "1"]) == 0
    capsys.readouterr()
    face = tmp_path / "face.png"
    Image.new("RGB", (16, 16)).save(face)
    big, grey = tmp_path / "big.png", tmp_path / "grey.png"
    Image.new("RGB", (32, 32)).save(big)
    Image.new("L", (16, 16)).save(grey)
    out = str(tmp_path / "p.png")
    cases = [
        (["segment", str(model), "--input", str(face), "--out", out], "has no segmentation head"),
        (["segment", str(head), "--input", str(big), "--out", out], "resize it to 16×16"),
        (["segment", str(head), "--input", str(grey), "--out", out], "is a L image"),
        (["segment", str(other), "--head", str(head), "--input", str(face), "--out", out], "another model"),
        (["segment", str(head), "--input", str(tmp_path / "none.png"), "--out", out], "does not exist"),
        (args + ["--blocks", "dec9"], "unknown block"),
        (args + ["--timesteps", "5000"], "timesteps must lie in"),
        (["segment-train", str(model), "--out", str(model)], "is not a segmentation head"),
        (["sample", str(head), "--num", "1", "--out", out], "is a segmentation head"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, (argv, err)
    assert (model / "checkpoint.json").is_file() and not (tmp_path / "p.png").exists()


def test_model_feature_fn_refuses_conditional_models():
    from ddpm.errors import UserError
    from ddpm.pipelines.loading import LoadedModel

    config = load_experiment_config("fashion-mnist-class")
    loaded = LoadedModel(model=None, config=config, schedule=None, meta={}, path=None)
    with pytest.raises(UserError, match="unconditional"):
        model_feature_fn(loaded, FeatureSpec())


def tiny_autoencoder():
    from ddpm.models.autoencoder import Autoencoder, AutoencoderConfig
    from ddpm.pipelines.autoencoders import LoadedAutoencoder

    config = AutoencoderConfig(
        image_size=32, latent_channels=3, base_channels=8, channel_mult=(1, 2), norm_groups=4
    )
    torch.manual_seed(0)
    model = Autoencoder(config).eval()
    return LoadedAutoencoder(
        model=model, config=config, scale_factor=0.5, digest="", source="tiny", meta={}, path=None
    )


def test_latent_features_come_from_the_scaled_posterior_mean_at_image_size():
    from ddpm.pipelines.segmentation import diffusion_feature_fn

    coder = tiny_autoencoder()
    unet = tiny_unet()  # works on 3×16×16 latents of 32×32 images
    schedule = make_schedule(DiffusionConfig())
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    spec = FeatureSpec(timesteps=(20,), blocks=("dec3",))
    feats = diffusion_feature_fn(unet, schedule, spec, coder)(images)
    assert feats.shape == (2, 8, 32, 32)
    with torch.no_grad():
        z = coder.model.encode(images).mean * 0.5
    by_hand = diffusion_features(unet, z, schedule, [20], ["dec3"], size=32)
    torch.testing.assert_close(feats, by_hand)


def test_autoencoder_encoder_features_cover_every_block():
    from ddpm.pipelines.segmentation import encoder_feature_fn

    coder = tiny_autoencoder()
    blocks = coder.model.encoder.feature_blocks()
    assert len(blocks) == 3  # a ResNet block per level and the middle
    feats = encoder_feature_fn(coder)(torch.zeros(2, 3, 32, 32))
    assert feats.shape == (2, 8 + 16 + 16, 32, 32)


def test_default_blocks_are_the_middle_decoder_resolutions():
    from ddpm.models.unet_features import default_blocks

    assert default_blocks(tiny_unet()) == ("dec0", "dec1", "dec2", "dec3")  # two resolutions: all
    deeper = UNet(replace(TINY, image_size=32, channel_mult=(1, 2, 2, 2)))
    assert default_blocks(deeper) == ("dec2", "dec3", "dec4", "dec5")  # 8 and 16 of 4 … 32


def test_the_pretrained_faces_head_segments_a_face_the_model_draws(tmp_path):
    from ddpm.pipelines import generate
    from ddpm.pipelines.segmentation import load_segmenter
    from ddpm.samplers import SamplerConfig

    segmenter = load_segmenter("faces", device="cpu")  # checks the head's digest against the weights
    assert segmenter.head.parts[:3] == ("background", "skin", "eyes")
    face = generate(
        segmenter.loaded, 2, seed=0, sampler=SamplerConfig(sampler="ddim", steps=20), progress=False
    )
    parts = segmenter(face.images)
    for labels in parts:
        counts = torch.bincount(labels.reshape(-1), minlength=11)
        assert counts[1] > 50  # skin
        assert (counts > 0).sum() >= 4  # a face has several parts
        assert labels[0, 0] in (0, 8, 6)  # a corner is background, clothes or hair
