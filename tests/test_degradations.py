import pytest
import torch

from ddpm.data.degradations import (
    TASKS,
    apply_mask,
    center_box_mask,
    condition_channels,
    degrade,
    downsample,
    greyscale,
    jpeg,
    network_condition,
    random_box_mask,
    side_crop_mask,
    stroke_mask,
)


@pytest.fixture
def rgb():
    return torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1


@pytest.mark.parametrize("task", [t for t in TASKS if t != "none"])
def test_every_task_keeps_shape_range_and_is_deterministic(task, rgb):
    y, mask = degrade(task, rgb, torch.Generator().manual_seed(5))
    y2, mask2 = degrade(task, rgb, torch.Generator().manual_seed(5))
    assert y.shape == rgb.shape and y.min() >= -1 and y.max() <= 1
    assert torch.equal(y, y2) and (mask is None or torch.equal(mask, mask2))
    cond = network_condition(y, mask)
    assert cond.shape[1] == condition_channels(task, 3)
    if mask is not None:
        assert torch.equal(y * mask, rgb * mask)  # known pixels are the image's own
        assert 0 < mask.mean() < 1


def test_downsample_is_an_area_average_then_upsample():
    x = torch.arange(16.0).reshape(1, 1, 4, 4) / 16
    y = downsample(x, 2)
    low = torch.nn.functional.avg_pool2d(x, 2)
    assert torch.allclose(torch.nn.functional.avg_pool2d(y, 2), low, atol=0.05)
    assert torch.equal(downsample(torch.zeros(1, 1, 8, 8), 4), torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError):
        downsample(torch.zeros(1, 1, 6, 6), 4)


def test_masks():
    m = center_box_mask((2, 1, 8, 8), 0.5)
    assert m[0, 0, 2:6, 2:6].sum() == 0 and m.sum() == 2 * (64 - 16)
    r = side_crop_mask((1, 1, 8, 8), "right")
    assert r[..., :4].min() == 1 and r[..., 4:].max() == 0
    g = torch.Generator().manual_seed(0)
    assert 0 < random_box_mask((3, 1, 16, 16), g).mean() < 1
    assert 0 < stroke_mask((3, 1, 16, 16), g).mean() < 1
    x = torch.ones(1, 1, 8, 8)
    assert torch.equal(apply_mask(x, m[:1]), m[:1])


def test_greyscale_and_jpeg(rgb):
    grey = greyscale(rgb)
    assert torch.equal(grey[:, 0], grey[:, 1]) and torch.equal(grey[:, 1], grey[:, 2])
    white = torch.ones(1, 3, 4, 4)
    assert torch.allclose(greyscale(white), white)
    low, high = jpeg(rgb, 5), jpeg(rgb, 95)
    assert (low - rgb).abs().mean() > (high - rgb).abs().mean()
