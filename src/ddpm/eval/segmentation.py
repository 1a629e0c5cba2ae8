"""Segmentation quality: the confusion matrix, per-class intersection over union, and mIoU.

IoU_k = TP_k / (TP_k + FP_k + FN_k), counted over every pixel of the evaluation set at once (as
the anchor, Baranchuk et al. 2022, and the Cityscapes/PASCAL convention do). A class absent from
both the prediction and the ground truth has no IoU (NaN) and is left out of the mean; a class
predicted but absent from the ground truth scores 0.
"""

from __future__ import annotations

import math

import torch


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(K, K) int64 counts, rows = true class, columns = predicted class, over all pixels."""
    if pred.shape != target.shape:
        raise ValueError(
            f"prediction {tuple(pred.shape)} and ground truth {tuple(target.shape)} differ in shape"
        )
    p, t = pred.reshape(-1).long(), target.reshape(-1).long()
    if len(p) and (min(p.min(), t.min()) < 0 or max(p.max(), t.max()) >= num_classes):
        raise ValueError(f"labels must lie in 0 … {num_classes - 1}")
    return torch.bincount(t * num_classes + p, minlength=num_classes**2).reshape(num_classes, num_classes)


def iou_per_class(confusion: torch.Tensor) -> torch.Tensor:
    """(K,) float64 IoU of every class; NaN where the class is in neither prediction nor truth."""
    c = confusion.double()
    tp = c.diagonal()
    union = c.sum(0) + c.sum(1) - tp
    return torch.where(union > 0, tp / union.clamp_min(1), torch.full_like(tp, math.nan))


def mean_iou(confusion: torch.Tensor) -> float:
    """Mean of the defined per-class IoUs (classes seen in prediction or truth)."""
    iou = iou_per_class(confusion)
    seen = ~iou.isnan()
    return float(iou[seen].mean()) if seen.any() else math.nan


def pixel_accuracy(confusion: torch.Tensor) -> float:
    """Share of pixels labelled correctly."""
    return float(confusion.diagonal().sum() / confusion.sum().clamp_min(1))


def segmentation_report(confusion: torch.Tensor, names: tuple[str, ...]) -> dict:
    """mIoU, pixel accuracy and each named class's IoU (None where undefined), for JSON."""
    iou = iou_per_class(confusion)
    return {
        "miou": mean_iou(confusion),
        "pixel_accuracy": pixel_accuracy(confusion),
        "iou": {n: (None if math.isnan(v) else float(v)) for n, v in zip(names, iou.tolist(), strict=True)},
    }
