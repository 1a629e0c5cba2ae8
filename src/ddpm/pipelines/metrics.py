"""The metrics of ``ddpm eval``, one registry entry each: a line of help, the inputs it reads, and a
small function that measures it. A new metric is one new entry in :data:`METRICS`.

Inputs, named by ``Metric.reads``:

- ``"features"``: :class:`FeatureSets` — features of the measured samples, of the real reference
  (test) images and of the floor (train) images, in the metric's feature ``space``;
- ``"classifier"``: the Fashion-MNIST domain classifier with the samples and the floor images;
- ``"model"``: :class:`ModelInputs` — the loaded model, real test images and the eval settings.

Every sample metric is reported next to its floor: the same metric between two disjoint real sets.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ddpm.data.fashion_mnist import CLASS_NAMES as FASHION_CLASSES
from ddpm.errors import UserError
from ddpm.eval.domain_classifier import DomainClassifier
from ddpm.eval.frechet import frechet_distance, gaussian_stats
from ddpm.eval.kid import kernel_distance
from ddpm.eval.nll import variational_bound
from ddpm.eval.precision_recall import precision_recall
from ddpm.imaging import to_model_range
from ddpm.models.denoiser import model_denoiser
from ddpm.models.embeddings import null_label
from ddpm.pipelines.loading import LoadedModel
from ddpm.runtime import progress_bar, resolve_precision

CHOSEN_SPACE = "chosen"
"""``Metric.space`` of a metric measured in the feature space that ``--pr-space`` picks."""


@dataclass(frozen=True, kw_only=True)
class FeatureSets:
    """(N, D) float64 features of the samples (``fake``), the reference (``real``, test images) and
    the floor set (``floor``, train images), in the feature space named ``space``."""

    space: str
    fake: np.ndarray
    real: np.ndarray
    floor: np.ndarray


@dataclass(frozen=True, kw_only=True)
class ModelInputs:
    """What a model metric reads: the model, ``test_images()`` (the first ``num`` of the fixed
    test order, loaded on call), the evaluation's seed, batch size and progress setting, and the
    reverse variance of p_θ for the bound (the evaluation's sampler setting)."""

    loaded: LoadedModel
    test_images: Callable[[int], torch.Tensor]
    num: int
    seed: int
    batch_size: int
    progress: bool
    variance: str = "beta"


@dataclass(frozen=True, kw_only=True)
class Metric:
    """One metric: ``help`` (one line), ``reads`` ("features", "classifier" or "model"), the feature
    ``space`` of a features metric ("inception", "domain" or :data:`CHOSEN_SPACE`), and ``measure``,
    called with that input (features: ``FeatureSets``; classifier: ``(classifier, samples, floor
    images)``; model: ``ModelInputs``) and returning the metric's JSON-ready report."""

    help: str
    reads: str
    measure: Callable[..., dict]
    space: str | None = None

    def space_for(self, pr_space: str) -> str | None:
        """The feature space this metric is measured in, given the resolved ``--pr-space``."""
        return pr_space if self.space == CHOSEN_SPACE else self.space


def frechet_report(f: FeatureSets) -> dict:
    """Fréchet distance between Gaussians fitted to samples and to the reference (Heusel et al.
    2017), and its floor."""
    real = gaussian_stats(f.real)
    return {
        "value": frechet_distance(*gaussian_stats(f.fake), *real),
        "floor": frechet_distance(*gaussian_stats(f.floor), *real),
    }


def kid_report(f: FeatureSets) -> dict:
    """KID ×10³, mean and spread over 50 subsets, for samples and floor."""
    size = min(1000, max(2, len(f.fake) // 2))  # subsets must differ for their spread to mean anything
    kid, sd = kernel_distance(f.fake, f.real, subsets=50, subset_size=size)
    kid_floor, sd_floor = kernel_distance(f.floor, f.real, subsets=50, subset_size=size)
    return {
        "value": kid * 1e3,
        "std": sd * 1e3,
        "floor": kid_floor * 1e3,
        "floor_std": sd_floor * 1e3,
        "subset_size": size,
    }


def precision_recall_report(f: FeatureSets) -> dict:
    """Improved precision / recall (k = 3) of the samples, and of the floor set, against the reference."""
    p, r = precision_recall(f.real, f.fake)
    pf, rf = precision_recall(f.real, f.floor)
    return {"precision": p, "recall": r, "floor_precision": pf, "floor_recall": rf, "space": f.space}


def _class_histogram(logits: torch.Tensor, names) -> dict:
    probs = logits.softmax(1)
    hist = torch.bincount(probs.argmax(1), minlength=len(names)).double() / len(probs)
    nonzero = hist[hist > 0]
    return {
        "histogram": {n: round(h, 4) for n, h in zip(names, hist.tolist(), strict=True)},
        "normalised_entropy": float(-(nonzero * nonzero.log()).sum() / math.log(len(names))),
        "confident_share": float((probs.max(1).values >= 0.9).double().mean()),
    }


def class_report(classifier: DomainClassifier, samples: torch.Tensor, floor: torch.Tensor) -> dict:
    """The classifier's class histogram of the samples, its normalised entropy and the share of
    confident predictions; the same for the floor images under ``floor``."""
    report = _class_histogram(classifier.features_and_logits(samples)[1], FASHION_CLASSES)
    report["floor"] = _class_histogram(classifier.features_and_logits(floor)[1], FASHION_CLASSES)
    return report


def nll_report(inputs: ModelInputs) -> dict:
    """The bound in bits/dim on ``num`` test images, with its per-term breakdown.

    A class-conditional model is measured as the unconditional model it also is (the null label),
    so its number compares with an unconditional model's."""
    loaded = inputs.loaded
    c = loaded.config.model
    if c.cond_channels or c.context_dim:
        raise UserError("nll is measured for unconditional and class-conditional models only")
    if loaded.autoencoder is not None:
        raise UserError(
            "nll of a latent model would be bits per latent dimension, not per pixel; use fid, kid or pr"
        )
    images = inputs.test_images(inputs.num)
    device = next(loaded.model.parameters()).device
    precision = resolve_precision("fp32", device)
    terms = []
    g = torch.Generator().manual_seed(inputs.seed)
    size = inputs.batch_size
    batches = range(0, len(images), size)
    for start in progress_bar(batches, desc="nll", enabled=inputs.progress and len(batches) > 1):
        x0 = to_model_range(images[start : start + size]).to(device)
        labels = torch.full((len(x0),), null_label(c.num_classes), device=device)
        null = {"class_labels": labels} if c.num_classes else {}
        denoise = model_denoiser(loaded.model, precision, **null)
        terms.append(
            variational_bound(
                denoise,
                x0,
                loaded.schedule,
                loaded.prediction_type,
                inputs.variance,
                clip_x0=True,
                generator=g,
                progress=inputs.progress and len(batches) == 1,
            )
        )
    prior = np.concatenate([t.prior for t in terms])
    decoder = np.concatenate([t.decoder for t in terms])
    kl = np.concatenate([t.kl for t in terms])
    total = prior + decoder + kl.sum(1)
    bands = np.array_split(np.arange(kl.shape[1]), 10)
    return {
        "bits_per_dim": float(total.mean()),
        "stderr": float(total.std(ddof=1) / math.sqrt(len(total))) if len(total) > 1 else 0.0,
        "images": len(total),
        "variance": inputs.variance,
        "terms": {
            "prior_L_T": float(prior.mean()),
            "decoder_L_0": float(decoder.mean()),
            "kl_sum": float(kl.sum(1).mean()),
            "kl_by_band": [
                {
                    "t_from": int(b[0]) + 2,
                    "t_to": int(b[-1]) + 2,
                    "bits_per_dim": float(kl[:, b].sum(1).mean()),
                }
                for b in bands
            ],
        },
    }


METRICS: dict[str, Metric] = {
    "fid": Metric(
        help="Fréchet Inception Distance (2048-d pool features)",
        reads="features",
        space="inception",
        measure=frechet_report,
    ),
    "kid": Metric(
        help="Kernel Inception Distance ×10³, mean ± s.d. over subsets",
        reads="features",
        space="inception",
        measure=kid_report,
    ),
    "fd-domain": Metric(
        help="Fréchet distance in the Fashion-MNIST classifier's 128-d features",
        reads="features",
        space="domain",
        measure=frechet_report,
    ),
    "pr": Metric(
        help="precision / recall, k = 3 (--pr-space: domain for Fashion-MNIST by default, else Inception)",
        reads="features",
        space=CHOSEN_SPACE,
        measure=precision_recall_report,
    ),
    "classes": Metric(
        help="class histogram of samples by the Fashion-MNIST classifier",
        reads="classifier",
        measure=class_report,
    ),
    "nll": Metric(
        help="negative log-likelihood bound in bits/dim on test images (DDPM eq. 5, 13)",
        reads="model",
        measure=nll_report,
    ),
}
"""The metrics ``ddpm eval --metrics`` accepts, in report order."""
