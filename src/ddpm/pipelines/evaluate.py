"""``ddpm eval``: sample quality (FID, KID, precision/recall, domain FD, class histogram) and NLL.

Every metric is reported next to its floor — the same metric between two disjoint sets of
real images (train vs test) — and with the protocol it was measured under.
"""

from __future__ import annotations

import functools
import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch

from ddpm.data import DataConfig, load_dataset
from ddpm.data.fashion_mnist import CLASS_NAMES as FASHION_CLASSES
from ddpm.errors import UserError
from ddpm.eval.features import cached_features, domain_space, inception_space
from ddpm.eval.frechet import frechet_distance, gaussian_stats
from ddpm.eval.kid import kernel_distance
from ddpm.eval.nll import variational_bound
from ddpm.eval.precision_recall import precision_recall
from ddpm.imaging import to_model_range, to_uint8
from ddpm.models.denoiser import model_denoiser
from ddpm.pipelines.generation import generate
from ddpm.pipelines.loading import LoadedModel
from ddpm.runtime import progress_bar, resolve_precision
from ddpm.samplers import SamplerConfig

METRICS = {
    "fid": "Fréchet Inception Distance (2048-d pool features)",
    "kid": "Kernel Inception Distance ×10³, mean ± s.d. over subsets",
    "pr": "precision / recall, k = 3 (--pr-space: domain for Fashion-MNIST by default, else Inception)",
    "fd-domain": "Fréchet distance in the Fashion-MNIST classifier's 128-d features",
    "classes": "class histogram of samples by the Fashion-MNIST classifier",
    "nll": "negative log-likelihood bound in bits/dim on test images (DDPM eq. 5, 13)",
}


@dataclass
class EvalConfig:
    metrics: tuple[str, ...] = ("fd-domain", "pr", "classes")
    num: int = 1000
    seed: int = 0
    batch_size: int = 100
    nll_num: int = 64
    sampler: SamplerConfig | None = None
    device: str = "auto"
    progress: bool = True
    pr_space: str = "auto"

    def __post_init__(self) -> None:
        unknown = sorted(set(self.metrics) - set(METRICS))
        if unknown:
            raise UserError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(METRICS)}")
        if self.pr_space not in ("auto", "domain", "inception"):
            raise UserError(
                f"unknown precision/recall space {self.pr_space!r}; use auto, domain or inception"
            )
        if self.num < 10 or self.nll_num < 1 or self.batch_size < 1:
            raise UserError("--num must be ≥ 10, --nll-num and --batch-size ≥ 1")
        if not 0 <= self.seed < 2**32:
            raise UserError(f"--seed must be a whole number in [0, 2^32), got {self.seed}")


SPLIT_DATASETS = ("fashion-mnist", "faces", "emoji")  # data sets with a held-out test split


def real_images(data: DataConfig, split: str, n: int) -> torch.Tensor:
    """``n`` real images of ``split`` in a fixed random order: the reference and floor sets. Data sets
    without a test split (digits, folders) lend their first half as "train", their second as "test"."""
    if data.dataset in SPLIT_DATASETS:
        part = load_dataset(replace(data, split=split)).images
    else:
        split_data = load_dataset(data).images
        half = len(split_data) // 2
        part = split_data[:half] if split == "train" else split_data[half:]
    if len(part) < n:
        raise UserError(f"the {split} split has {len(part)} images, fewer than --num {n}")
    g = torch.Generator().manual_seed(1234)
    return part[torch.randperm(len(part), generator=g)[:n]]


FIXED_DATASETS = ("fashion-mnist", "digits")  # the same images on every machine


def real_set_key(data: DataConfig, n: int, test_images: Callable[[], torch.Tensor] | None = None) -> str:
    """The cache key of the real reference sets: data set, size and count, plus, for data sets built
    or chosen locally (faces, emoji, folders), a digest of the test images (``test_images()``, by
    default :func:`real_images`), so that features cached for one build are never reused for another."""
    key = f"{data.dataset}-{data.image_size}-{n}"
    if data.downsample > 1:
        key += f"-down{data.downsample}"
    if data.dataset in FIXED_DATASETS:
        return key
    images = test_images() if test_images else real_images(data, "test", n)
    return f"{key}-{hashlib.sha1(images.numpy().tobytes()).hexdigest()[:10]}"


def _set_metrics(name: str, fake: np.ndarray, real: np.ndarray, floor: np.ndarray, want: set) -> dict:
    out = {}
    real_stats = gaussian_stats(real)
    if name == "inception" and "fid" in want or name == "domain" and "fd-domain" in want:
        key = "fid" if name == "inception" else "fd-domain"
        out[key] = {
            "value": frechet_distance(*gaussian_stats(fake), *real_stats),
            "floor": frechet_distance(*gaussian_stats(floor), *real_stats),
        }
    if name == "inception" and "kid" in want:
        size = min(1000, max(2, len(fake) // 2))  # subsets must differ for their spread to mean anything
        kid, sd = kernel_distance(fake, real, subsets=50, subset_size=size)
        kid_floor, sd_floor = kernel_distance(floor, real, subsets=50, subset_size=size)
        out["kid"] = {
            "value": kid * 1e3,
            "std": sd * 1e3,
            "floor": kid_floor * 1e3,
            "floor_std": sd_floor * 1e3,
            "subset_size": size,
        }
    return out


def _class_report(logits: torch.Tensor, names) -> dict:
    probs = logits.softmax(1)
    hist = torch.bincount(probs.argmax(1), minlength=len(names)).double() / len(probs)
    nonzero = hist[hist > 0]
    return {
        "histogram": {n: round(h, 4) for n, h in zip(names, hist.tolist(), strict=True)},
        "normalised_entropy": float(-(nonzero * nonzero.log()).sum() / math.log(len(names))),
        "confident_share": float((probs.max(1).values >= 0.9).double().mean()),
    }


def evaluate(
    loaded: LoadedModel,
    config: EvalConfig,
    samples: torch.Tensor | None = None,
    on_samples: Callable[[torch.Tensor], None] | None = None,
) -> dict:
    """Run the requested metrics; returns a JSON-ready report with protocols, floors and timings.

    The first ``config.num`` of ``samples`` (N×C×H×W uint8) are measured instead of new ones;
    ``on_samples`` receives whichever images are measured (to save them, say)."""
    want = set(config.metrics)
    data = loaded.config.data
    report: dict = {
        "checkpoint": str(loaded.path),
        "num_samples": config.num,
        "seed": config.seed,
        "metrics": {},
    }
    timings = report["timings_seconds"] = {}
    sample_metrics = want - {"nll"}
    is_fashion = data.dataset == "fashion-mnist" and loaded.config.model.image_size == 32
    pr_space = config.pr_space if config.pr_space != "auto" else ("domain" if is_fashion else "inception")
    if ({"fd-domain", "classes"} & want or ("pr" in want and pr_space == "domain")) and not is_fashion:
        raise UserError(
            "fd-domain, classes and domain-space pr need a 32×32 Fashion-MNIST model; use fid, kid or pr"
        )

    if samples is not None:
        expected = (loaded.config.model.in_channels, loaded.config.model.image_size)
        if (
            samples.dtype != torch.uint8
            or samples.ndim != 4
            or (samples.shape[1], samples.shape[3]) != expected
        ):
            raise UserError(
                f"samples must be N×{expected[0]}×{expected[1]}×{expected[1]} uint8 images to match "
                f"the model's data, got {tuple(samples.shape)} {samples.dtype}"
            )
        if len(samples) < config.num:
            raise UserError(f"{len(samples)} samples given but --num is {config.num}; lower --num")
        samples = samples[: config.num]
    if sample_metrics:
        sampler = config.sampler or loaded.config.sample
        if samples is None:
            start = time.perf_counter()
            fake = to_uint8(
                generate(
                    loaded,
                    config.num,
                    seed=config.seed,
                    sampler=sampler,
                    batch_size=config.batch_size,
                    progress=config.progress,
                ).images
            )
            timings["sampling"] = time.perf_counter() - start
            report["sampler"] = vars(sampler)
        else:
            fake = samples
            report["sampler"] = "given samples"
        if on_samples is not None:
            on_samples(fake)
        real = functools.cache(lambda: real_images(data, "test", config.num))  # loaded once, if at all
        real_key = real_set_key(data, config.num, real)
        floor = lambda: real_images(data, "train", config.num)  # noqa: E731
        report["reference"] = f"{config.num} {data.dataset} test images; floor: {config.num} train images"
        spaces = []
        if {"fid", "kid"} & want or ("pr" in want and pr_space == "inception"):
            spaces.append(inception_space(progress=config.progress))
        classifier = None
        if {"fd-domain", "classes"} & want or ("pr" in want and pr_space == "domain"):
            space, classifier = domain_space(progress=config.progress)
            spaces.append(space)
        report["protocols"] = {s.name: s.protocol for s in spaces}
        for space in spaces:
            start = time.perf_counter()
            f_real = cached_features(space, f"{real_key}-test", real)
            f_floor = cached_features(space, f"{real_key}-train", floor)
            f_fake = space(fake)
            report["metrics"].update(_set_metrics(space.name, f_fake, f_real, f_floor, want))
            if "pr" in want and space.name == pr_space:
                p, r = precision_recall(f_real, f_fake)
                pf, rf = precision_recall(f_real, f_floor)
                report["metrics"]["pr"] = {
                    "precision": p,
                    "recall": r,
                    "floor_precision": pf,
                    "floor_recall": rf,
                    "space": space.name,
                }
            timings[f"{space.name}_metrics"] = time.perf_counter() - start
        if "classes" in want and classifier is not None:
            names = FASHION_CLASSES
            report["metrics"]["classes"] = _class_report(classifier.features_and_logits(fake)[1], names)
            report["metrics"]["classes"]["floor"] = _class_report(
                classifier.features_and_logits(floor())[1], names
            )

    if "nll" in want:
        start = time.perf_counter()
        report["metrics"]["nll"] = nll_report(loaded, config)
        timings["nll"] = time.perf_counter() - start
    return report


def nll_report(loaded: LoadedModel, config: EvalConfig) -> dict:
    """The bound in bits/dim on ``nll_num`` test images, with its per-term breakdown.

    A class-conditional model is measured as the unconditional model it also is (the null label),
    so its number compares with an unconditional model's."""
    c = loaded.config.model
    if c.cond_channels or c.context_dim:
        raise UserError("nll is measured for unconditional and class-conditional models only")
    images = real_images(loaded.config.data, "test", config.nll_num)
    device = next(loaded.model.parameters()).device
    precision = resolve_precision("fp32", device)
    terms = []
    g = torch.Generator().manual_seed(config.seed)
    batches = range(0, len(images), config.batch_size)
    for start in progress_bar(batches, desc="nll", enabled=config.progress and len(batches) > 1):
        x0 = to_model_range(images[start : start + config.batch_size]).to(device)
        null = {"class_labels": torch.full((len(x0),), c.num_classes, device=device)} if c.num_classes else {}
        denoise = model_denoiser(loaded.model, precision, **null)
        terms.append(
            variational_bound(
                denoise,
                x0,
                loaded.schedule,
                loaded.prediction_type,
                loaded.config.sample.variance,
                clip_x0=True,
                generator=g,
                progress=config.progress and len(batches) == 1,
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
        "variance": loaded.config.sample.variance,
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
