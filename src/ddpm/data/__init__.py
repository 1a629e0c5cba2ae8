"""Data sets: Fashion-MNIST, scikit-learn digits, faces, emoji, image folders, as in-memory uint8
tensors; folders, zips, tar shards and Hugging Face sets can also be streamed from disk."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from ddpm.data.dataset import ImageDataset
from ddpm.data.degradations import TASKS, augment_condition, condition_channels, degrade, network_condition
from ddpm.data.digits import load_digits
from ddpm.data.emoji import default_emoji_dir, load_emoji
from ddpm.data.faces import STYLES as FACE_STYLES
from ddpm.data.faces import default_faces_dir, load_faces
from ddpm.data.fashion_mnist import load_fashion_mnist
from ddpm.data.image_folder import load_image_folder
from ddpm.data.pairs import garment_pairs
from ddpm.data.streaming import StreamingImages
from ddpm.errors import UserError
from ddpm.validation import InvalidValue, require_choice, require_int, require_number, require_positive_int

DATASETS = ("fashion-mnist", "fashion-mnist-pairs", "digits", "folder", "faces", "emoji")


@dataclass
class DataConfig:
    """Which images to train on."""

    dataset: str = field(default="fashion-mnist", metadata={"help": f"one of: {', '.join(DATASETS)}"})
    path: str = field(
        default="",
        metadata={
            "help": "where the data are: IDX files (fashion-mnist), built faces (faces); for folder: a "
            "folder of images, a .zip of one, WebDataset .tar shards (a folder of them or one), or a "
            "Hugging Face data set saved to disk (or a folder of Parquet files)"
        },
    )
    streaming: bool = field(
        default=False,
        metadata={
            "help": "folder only: read images from disk as training goes (sets larger than memory) "
            "instead of loading them all first"
        },
    )
    workers: int = field(
        default=2, metadata={"help": "DataLoader worker processes decoding streamed images (0 = none)"}
    )
    split: str = field(default="train", metadata={"help": "train or test (fashion-mnist)"})
    image_size: int = field(
        default=32,
        metadata={
            "help": "images are padded/resized to this square size (fashion-mnist-pairs: garments "
            "of this size in strips 4× as wide)"
        },
    )
    channels: int = field(default=1, metadata={"help": "1 (grey) or 3 (RGB); folder only"})
    task: str = field(
        default="none",
        metadata={"help": f"image-to-image task making the conditioning image: {', '.join(TASKS)}"},
    )
    cond_augment: float = field(
        default=0.0, metadata={"help": "max noise level of Gaussian conditioning augmentation (cascades)"}
    )
    downsample: int = field(
        default=1,
        metadata={
            "help": "area-average the images by this factor after fitting them to image_size "
            "(a cascade's base stage: the low-resolution images its SR stage learns from)"
        },
    )

    def __post_init__(self) -> None:
        require_choice("task", self.task, TASKS)
        require_choice("dataset", self.dataset, DATASETS)
        require_positive_int("image_size", self.image_size)
        require_choice("channels", self.channels, (1, 3))
        require_number("cond_augment", self.cond_augment, 0, 1)
        require_positive_int("downsample", self.downsample)
        require_int("workers", self.workers, 0)
        if self.streaming and self.dataset != "folder":
            raise InvalidValue("streaming", "applies to dataset = folder (data read from disk)", True)
        if self.streaming and self.downsample != 1:
            raise InvalidValue("downsample", "is not available with streaming yet", self.downsample)
        if self.image_size % self.downsample:
            raise InvalidValue("downsample", f"must divide image_size {self.image_size}", self.downsample)


def task_condition(task: str, augment: float = 0.0):
    """``make(x0, generator) -> model inputs`` for a task (None for "none"): ``cond_image`` = y (plus
    the mask if any), and with ``augment`` > 0 y noised at a random level, given as ``aug_level``."""
    if task == "none":
        return None

    def make(x0, generator):
        y, mask = degrade(task, x0, generator)
        if augment <= 0:
            return {"cond_image": network_condition(y, mask)}
        y, level = augment_condition(y, augment, generator)
        return {"cond_image": network_condition(y, mask), "aug_level": level}

    return make


def faces_dataset(path: str, size: int, split: str) -> ImageDataset:
    """The built faces as (N, 3, S, S) uint8, labelled by style (for style-conditional models)."""
    images, _, style = load_faces(path or default_faces_dir(), size, split)
    return ImageDataset(
        images=torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),
        labels=torch.from_numpy(style.astype("int64")),
        class_names=tuple(FACE_STYLES),
        name=f"faces-{split}",
    )


def load_dataset(config: DataConfig) -> ImageDataset:
    """The data set a :class:`DataConfig` names, area-averaged by ``config.downsample``."""
    dataset = _load_fitted(config)
    if config.downsample == 1:
        return dataset
    return replace(dataset, images=area_downsample(dataset.images, config.downsample))


def area_downsample(images: torch.Tensor, factor: int) -> torch.Tensor:
    """uint8 (N, C, H, W) images averaged over factor × factor blocks, rounded back to uint8: the same
    low-resolution images :func:`~ddpm.data.degradations.downsample` conditions SR stages on."""
    low = torch.nn.functional.avg_pool2d(images.float(), factor)
    return low.round().clamp(0, 255).to(torch.uint8)


def _load_fitted(config: DataConfig) -> ImageDataset:
    if config.dataset == "fashion-mnist":
        return load_fashion_mnist(config.path, config.split, config.image_size)
    if config.dataset == "fashion-mnist-pairs":
        return garment_pairs(load_fashion_mnist(config.path, config.split, config.image_size))
    if config.dataset == "digits":
        return load_digits(config.image_size)
    if config.dataset == "faces":
        return faces_dataset(config.path, config.image_size, config.split)
    if config.dataset == "emoji":
        images, captions, _ = load_emoji(config.path or default_emoji_dir(), config.image_size, config.split)
        tensor = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
        return ImageDataset(images=tensor, name=f"emoji-{config.split}", captions=captions)
    if not config.path:
        raise UserError("the folder data set needs --data.path pointing to a folder of images")
    if _plain_folder(config.path):
        return load_image_folder(config.path, config.image_size, config.channels)
    streamed = StreamingImages(config.path, config.image_size, config.channels)  # zip, shards, HF: all read
    images = torch.stack([streamed[i] for i in range(len(streamed))])
    return ImageDataset(images=images, labels=streamed.labels, name=streamed.name)


def _plain_folder(path: str) -> bool:
    """A folder of image files (not of tar shards, not a Hugging Face data set)."""
    p = Path(path)
    markers = ("dataset_info.json", "dataset_dict.json")
    return p.is_dir() and not any(p.glob("*.tar")) and not any((p / m).is_file() for m in markers)


def load_streaming(config: DataConfig) -> StreamingImages:
    """The ``folder`` data set of a configuration, read from disk image by image."""
    if not config.path:
        raise UserError("a streamed data set needs --data.path (a folder, .zip, .tar shards or HF data set)")
    return StreamingImages(config.path, config.image_size, config.channels)


__all__ = [
    "DATASETS",
    "TASKS",
    "condition_channels",
    "task_condition",
    "DataConfig",
    "ImageDataset",
    "load_dataset",
    "load_streaming",
    "StreamingImages",
    "load_digits",
    "load_fashion_mnist",
    "load_image_folder",
]
