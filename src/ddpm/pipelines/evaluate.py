"""``ddpm eval``: sample quality (FID, KID, precision/recall, domain FD, class histogram) and NLL.

Every metric is reported next to its floor — the same metric between two disjoint sets of
real images (train vs test) — and with the protocol it was measured under. The metrics themselves
are the entries of :data:`ddpm.pipelines.metrics.METRICS`; this module draws (or takes) the
samples, computes each input a chosen metric reads once, and times the stages.
"""

from __future__ import annotations

import functools
import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ddpm.data import DATASETS, DataConfig, load_dataset
from ddpm.errors import UserError
from ddpm.eval.features import cached_features, domain_space, inception_space
from ddpm.imaging import to_uint8
from ddpm.pipelines.baselines import LoadedBaseline, baseline_bits_per_dim, generate_baseline
from ddpm.pipelines.generation import generate
from ddpm.pipelines.loading import LoadedModel
from ddpm.pipelines.metrics import METRICS, FeatureSets, ModelInputs
from ddpm.samplers import SamplerConfig


@dataclass(kw_only=True)
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
    data: DataConfig | None = None  # the reference images; None: the model's own data set

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


def reference_data(loaded: LoadedModel | LoadedBaseline, spec: str) -> DataConfig:
    """The data set to compare samples with: a data set name (at the model's image size and
    channels) or a folder of images; for models without a data set of their own (diffusers folders)
    or to compare against another one."""
    channels, size = loaded.image_shape[0], loaded.image_shape[1]
    if spec in DATASETS and spec != "folder":
        return DataConfig(dataset=spec, image_size=size, channels=channels)
    if not Path(spec).is_dir():
        raise UserError(
            f"--data {spec!r} is neither a data set ({', '.join(DATASETS)}) nor a folder of images"
        )
    return DataConfig(dataset="folder", path=spec, image_size=size, channels=channels)


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


def _check_samples(loaded: LoadedModel, samples: torch.Tensor, num: int) -> torch.Tensor:
    """The first ``num`` of given samples, which must be uint8 images of the model's data."""
    expected = loaded.image_shape[:2]
    if samples.dtype != torch.uint8 or samples.ndim != 4 or (samples.shape[1], samples.shape[3]) != expected:
        raise UserError(
            f"samples must be N×{expected[0]}×{expected[1]}×{expected[1]} uint8 images to match "
            f"the model's data, got {tuple(samples.shape)} {samples.dtype}"
        )
    if len(samples) < num:
        raise UserError(f"{len(samples)} samples given but --num is {num}; lower --num")
    return samples[:num]


def evaluate(
    loaded: LoadedModel | LoadedBaseline,
    config: EvalConfig,
    samples: torch.Tensor | None = None,
    on_samples: Callable[[torch.Tensor], None] | None = None,
) -> dict:
    """Run the requested metrics; returns a JSON-ready report with protocols, floors and timings.
    A GAN, VAE or flow baseline is sampled in one pass per image, and its ``nll`` is the flow's exact
    likelihood or the VAE's bound (:func:`~ddpm.pipelines.baselines.baseline_bits_per_dim`).

    The first ``config.num`` of ``samples`` (N×C×H×W uint8) are measured instead of new ones;
    ``on_samples`` receives whichever images are measured (to save them, say)."""
    chosen = {name: metric for name, metric in METRICS.items() if name in config.metrics}
    data = config.data or loaded.config.data
    report: dict = {
        "checkpoint": str(loaded.path),
        "num_samples": config.num,
        "seed": config.seed,
        "metrics": {},
    }
    timings = report["timings_seconds"] = {}
    is_fashion = data.dataset == "fashion-mnist" and loaded.image_shape[1] == 32
    pr_space = config.pr_space if config.pr_space != "auto" else ("domain" if is_fashion else "inception")
    spaces_read = {m.space_for(pr_space) for m in chosen.values() if m.reads == "features"}
    reads_domain = "domain" in spaces_read or any(m.reads == "classifier" for m in chosen.values())
    if reads_domain and not is_fashion:
        raise UserError(
            "fd-domain, classes and domain-space pr need a 32×32 Fashion-MNIST model; use fid, kid or pr"
        )
    if samples is not None:
        samples = _check_samples(loaded, samples, config.num)

    sample_metrics = {name: m for name, m in chosen.items() if m.reads != "model"}
    if sample_metrics:
        sampler = config.sampler or loaded.config.sample
        if samples is None:
            start = time.perf_counter()
            if isinstance(loaded, LoadedBaseline):
                fake = to_uint8(
                    generate_baseline(
                        loaded, config.num, config.seed, config.batch_size, progress=config.progress
                    )
                )
                report["sampler"] = f"{loaded.family}: one network pass per image"
            else:
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
                report["sampler"] = vars(sampler)
            timings["sampling"] = time.perf_counter() - start
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
        if "inception" in spaces_read:
            spaces.append(inception_space(progress=config.progress))
        classifier = None
        if reads_domain:
            space, classifier = domain_space(progress=config.progress)
            spaces.append(space)
        report["protocols"] = {s.name: s.protocol for s in spaces}
        for space in spaces:
            start = time.perf_counter()
            f_real = cached_features(space, f"{real_key}-test", real)
            f_floor = cached_features(space, f"{real_key}-train", floor)
            features = FeatureSets(space=space.name, fake=space(fake), real=f_real, floor=f_floor)
            for name, m in sample_metrics.items():
                if m.reads == "features" and m.space_for(pr_space) == space.name:
                    report["metrics"][name] = m.measure(features)
            timings[f"{space.name}_metrics"] = time.perf_counter() - start
        for name, m in sample_metrics.items():
            if m.reads == "classifier":
                report["metrics"][name] = m.measure(classifier, fake, floor())

    for name, m in chosen.items():
        if m.reads == "model" and isinstance(loaded, LoadedBaseline):
            start = time.perf_counter()
            bits = baseline_bits_per_dim(
                loaded, real_images(data, "test", config.nll_num), config.seed, config.batch_size
            )
            report["metrics"][name] = {
                "bits_per_dim": float(bits.mean()),
                "stderr": float(bits.std(ddof=1) / math.sqrt(len(bits))) if len(bits) > 1 else 0.0,
                "kind": "exact (flow, uniform dequantisation)"
                if loaded.family == "flow"
                else "ELBO bound (VAE)",
                "num_images": len(bits),
            }
            timings[name] = time.perf_counter() - start
        elif m.reads == "model":
            start = time.perf_counter()
            inputs = ModelInputs(
                loaded=loaded,
                test_images=lambda n: real_images(data, "test", n),
                num=config.nll_num,
                seed=config.seed,
                batch_size=config.batch_size,
                progress=config.progress,
                variance=(config.sampler or loaded.config.sample).variance,
            )
            report["metrics"][name] = m.measure(inputs)
            timings[name] = time.perf_counter() - start
    return report
