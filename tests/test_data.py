import gzip
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from ddpm.data import DataConfig, load_dataset, load_digits, load_fashion_mnist, load_image_folder
from ddpm.data.fashion_mnist import DEFAULT_ROOT, read_idx
from ddpm.errors import UserError


def _write_idx(path, array, compress):
    header = b"\0\0\x08" + bytes([array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    (gzip.open if compress else open)(path, "wb").write(data)


@pytest.fixture
def fake_fashion(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = np.arange(5, dtype=np.uint8)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images, True)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels, False)
    return tmp_path, images, labels


def test_idx_files_from_any_folder_are_padded_to_32(fake_fashion):
    root, images, labels = fake_fashion
    ds = load_fashion_mnist(root, "test", 32)
    assert ds.images.shape == (5, 1, 32, 32) and ds.images.dtype == torch.uint8
    assert torch.equal(ds.images[:, 0, 2:30, 2:30], torch.from_numpy(images))
    assert ds.images[:, :, :2].sum() == 0 and ds.images[:, :, :, 30:].sum() == 0
    assert ds.labels.tolist() == labels.tolist() and ds.class_names[7] == "sneaker"


def test_missing_files_say_how_to_get_them(tmp_path, fake_fashion):
    with pytest.raises(UserError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path / "nope")
    with pytest.raises(UserError, match="train-images-idx3-ubyte"):
        load_fashion_mnist(fake_fashion[0], "train")


def test_truncated_idx_is_reported(tmp_path):
    _write_idx(tmp_path / "x", np.zeros((4, 3, 3)), False)
    raw = (tmp_path / "x").read_bytes()
    (tmp_path / "x").write_bytes(raw[:-5])
    with pytest.raises(UserError, match="truncated"):
        read_idx(tmp_path / "x")


@pytest.mark.skipif(not DEFAULT_ROOT.is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_the_real_fashion_mnist():
    ds = load_fashion_mnist(split="test")
    assert ds.images.shape == (10_000, 1, 32, 32)
    assert torch.bincount(ds.labels).tolist() == [1000] * 10


def test_digits():
    ds = load_digits(8)
    assert ds.images.shape == (1797, 1, 8, 8) and ds.images.max() == 255
    assert load_digits(16).images.shape == (1797, 1, 16, 16)


def test_image_folder_skips_and_names_corrupt_files(tmp_path, capsys):
    for i in range(3):
        Image.new("RGB", (40 + i, 30), (10 * i, 100, 200)).save(tmp_path / f"ok{i}.png")
    Image.new("L", (20, 20), 128).save(tmp_path / "grey.jpg")
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    (tmp_path / "notes.txt").write_text("ignored")
    ds = load_image_folder(tmp_path, 16, channels=3)
    assert ds.images.shape == (4, 3, 16, 16)
    assert "broken.png" in capsys.readouterr().err
    assert load_image_folder(tmp_path, 8, channels=1).images.shape == (4, 1, 8, 8)


def test_image_folder_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_image_folder(tmp_path / "missing", 16)
    with pytest.raises(UserError, match="no image files"):
        load_image_folder(tmp_path, 16)
    (tmp_path / "a.png").write_bytes(b"junk")
    with pytest.raises(UserError, match="could be read"):
        load_image_folder(tmp_path, 16)
    with pytest.raises(UserError, match="--data.path"):
        load_dataset(DataConfig(dataset="folder"))


def test_downsampled_data_are_area_averages(fake_fashion):
    """data.downsample: the fitted 32×32 images averaged over 2×2 blocks (what SR stages learn from)."""
    root = str(fake_fashion[0])
    full = load_dataset(DataConfig(path=root, split="test")).images.double()
    low = load_dataset(DataConfig(path=root, split="test", downsample=2)).images
    assert low.shape == (5, 1, 16, 16) and low.dtype == torch.uint8
    for r, c in [(5, 5), (8, 11), (14, 2)]:
        block = full[:, :, 2 * r : 2 * r + 2, 2 * c : 2 * c + 2].mean((-1, -2))
        assert torch.equal(low[:, :, r, c], block.round().to(torch.uint8))
    with pytest.raises(ValueError, match="divide"):
        DataConfig(downsample=3)
