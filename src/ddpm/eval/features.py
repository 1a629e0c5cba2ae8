"""Feature spaces for sample metrics, and a cache of real-image features on disk (``.npz``)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ddpm.eval.domain_classifier import VERSION as DOMAIN_VERSION
from ddpm.eval.domain_classifier import load_domain_classifier
from ddpm.eval.inception import PROTOCOL as INCEPTION_PROTOCOL
from ddpm.eval.inception import InceptionFeatures
from ddpm.fileio import atomic_write, cache_dir

SPACES = ("inception", "domain")


class FeatureSpace:
    """A named map from uint8 images to (N, D) float64 features, with a protocol string."""

    def __init__(self, name: str, protocol: str, fn: Callable[[torch.Tensor], np.ndarray]):
        self.name, self.protocol, self._fn = name, protocol, fn

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        return self._fn(images)


def inception_space(device: str = "cpu", progress: bool = True) -> FeatureSpace:
    net = InceptionFeatures(device)
    return FeatureSpace("inception", INCEPTION_PROTOCOL, lambda x: net(x, progress=progress))


def domain_space(progress: bool = True) -> tuple[FeatureSpace, object]:
    """The Fashion-MNIST classifier's 128-d features (and the classifier, for class predictions)."""
    classifier = load_domain_classifier(progress=progress)
    protocol = f"{DOMAIN_VERSION} penultimate 128-d (test accuracy {classifier.test_accuracy:.4f})"
    space = FeatureSpace("domain", protocol, lambda x: classifier.features_and_logits(x)[0].double().numpy())
    return space, classifier


def cached_features(
    space: FeatureSpace, key: str, images: Callable[[], torch.Tensor], root: str | Path | None = None
) -> np.ndarray:
    """Features of a real-image set, computed once and kept as ``.npz`` keyed by ``key`` (data
    set, split, size, count) and the feature protocol."""
    digest = hashlib.sha1(f"{key}|{space.protocol}".encode()).hexdigest()[:12]
    path = Path(root or cache_dir()) / "features" / f"{key}-{space.name}-{digest}.npz"
    if path.is_file():
        with np.load(path) as data:
            return data["features"].astype(np.float64)
    features = space(images()).astype(np.float32)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, features=features)

    atomic_write(path, write)
    return features.astype(np.float64)
