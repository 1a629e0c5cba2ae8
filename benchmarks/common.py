"""Shared helpers of the benchmark scripts: result files and the Fashion-MNIST quality probe."""

from __future__ import annotations

import json
import math
import statistics
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"


def write_results(name: str, result: dict, markdown: list[str]) -> Path:
    """Write ``results/NAME.json`` and ``results/NAME.md``; returns the JSON path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text("\n".join(markdown) + "\n")
    print("\n".join(markdown))
    return path


def timed(fn, *args, **kwargs):
    """(result, seconds) of one call."""
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def spread(values: list[float]) -> dict:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


class DomainProbe:
    """Domain Fréchet distance and class statistics of Fashion-MNIST samples against test images."""

    def __init__(self, num: int):
        from ddpm.data import load_fashion_mnist
        from ddpm.eval import gaussian_stats, load_domain_classifier

        self.classifier = load_domain_classifier()
        test = load_fashion_mnist(split="test").images
        g = torch.Generator().manual_seed(1234)
        self.reference = test[torch.randperm(len(test), generator=g)[:num]]
        feats, _ = self.classifier.features_and_logits(self.reference)
        self.stats = gaussian_stats(feats.numpy())

    def __call__(self, images: torch.Tensor) -> dict:
        return self.from_outputs(*self.classifier.features_and_logits(images))

    def from_outputs(self, feats: torch.Tensor, logits: torch.Tensor) -> dict:
        """The same statistics from the classifier's features and logits of a set."""
        from ddpm.eval import frechet_distance, gaussian_stats

        probs = logits.softmax(1)
        hist = torch.bincount(probs.argmax(1), minlength=10).double() / len(probs)
        nz = hist[hist > 0]
        return {
            "domain_fd": frechet_distance(*gaussian_stats(feats.numpy()), *self.stats),
            "confident": float((probs.max(1).values >= 0.9).double().mean()),
            "class_entropy": float(-(nz * nz.log()).sum() / math.log(10)),
        }


def fashion_quality(report: dict) -> dict:
    """The Fashion-MNIST quality row of an `evaluate` report run with fid, fd-domain, pr and classes:
    each value with its floor, and the sampler that drew the samples."""
    m = report["metrics"]
    return {
        "fd_domain": m["fd-domain"]["value"],
        "fd_domain_floor": m["fd-domain"]["floor"],
        "fid": m["fid"]["value"],
        "fid_floor": m["fid"]["floor"],
        "precision": m["pr"]["precision"],
        "recall": m["pr"]["recall"],
        "class_entropy": m["classes"]["normalised_entropy"],
        "sampler": report["sampler"],
    }
