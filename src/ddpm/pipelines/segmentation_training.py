"""Training a segmentation head for a model from the labelled faces (``ddpm segment-train``)."""

from __future__ import annotations

from pathlib import Path

import torch

from ddpm.data.faces import PARTS, default_faces_dir, load_faces
from ddpm.errors import UserError
from ddpm.eval.segmentation import confusion_matrix, segmentation_report
from ddpm.imaging import to_model_range
from ddpm.models.unet_features import unet_blocks
from ddpm.pipelines.loading import LoadedModel, load_model
from ddpm.pipelines.segmentation import (
    FeatureSpec,
    SegmentationHead,
    fit_pixel_segmenter,
    model_feature_fn,
    model_identity,
    predict_parts,
)
from ddpm.training.segmentation import PixelTrainConfig


def check_feature_spec(loaded: LoadedModel, spec: FeatureSpec) -> None:
    """Every block exists in the model's U-Net and every timestep in its schedule (one-line errors)."""
    names = list(unet_blocks(loaded.model))
    unknown = [b for b in spec.blocks if b not in names]
    if unknown:
        raise UserError(f"unknown block(s) {', '.join(unknown)}; this model's U-Net has {', '.join(names)}")
    if len(set(spec.blocks)) != len(spec.blocks):
        raise UserError("a block is listed twice in --blocks")
    last = loaded.schedule.num_timesteps - 1
    if not spec.timesteps or max(spec.timesteps) > last:
        raise UserError(f"timesteps must lie in 0 … {last} for this model, got {list(spec.timesteps)}")


def labelled_faces(size: int, split: str, data_path: str | Path | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(images in [−1, 1] (N, 3, S, S), part ids (N, S, S)) of a faces split."""
    images, labels, _ = load_faces(data_path or default_faces_dir(), size, split)
    return to_model_range(torch.from_numpy(images).permute(0, 3, 1, 2)), torch.from_numpy(labels).long()


def train_head_on_faces(
    model: str | Path,
    spec: FeatureSpec,
    *,
    labelled: int = 20,
    eval_num: int = 300,
    members: int = 3,
    steps: int = 1000,
    balanced: bool = False,
    data_path: str | Path | None = None,
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
) -> SegmentationHead:
    """A head on ``model``'s features, trained on ``labelled`` faces drawn (by ``seed``) from the
    train split and scored on the first ``eval_num`` faces of the test split."""
    loaded = load_model(model, device=device)
    spec = spec.for_network(loaded.model)
    check_feature_spec(loaded, spec)
    channels, size, _ = loaded.image_shape
    if channels != 3:
        raise UserError(f"the labelled faces are RGB; {model} makes {channels}-channel images")
    fn = model_feature_fn(loaded, spec)
    images, labels = labelled_faces(size, "train", data_path)
    pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:labelled]
    classifier = fit_pixel_segmenter(
        fn,
        images[pick],
        labels[pick],
        len(PARTS),
        members=members,
        train=PixelTrainConfig(steps=steps, balanced=balanced, seed=seed),
        progress=progress,
    )
    metrics: dict = {"labelled": len(pick)}
    if eval_num:
        test_images, test_labels = labelled_faces(size, "test", data_path)
        test_images, test_labels = test_images[:eval_num], test_labels[:eval_num]
        predicted = predict_parts(fn, classifier, test_images)
        metrics["test"] = segmentation_report(confusion_matrix(predicted, test_labels, len(PARTS)), PARTS)
        metrics["test"]["faces"] = len(test_images)
    source, digest = model_identity(loaded, model)
    return SegmentationHead(
        classifier=classifier,
        spec=spec,
        parts=PARTS,
        model_source=source,
        model_digest=digest,
        metrics=metrics,
    )
