"""Segmentation from diffusion features: images → per-pixel features → MLP ensemble → part map.

A *feature function* maps images in [−1, 1] (B, C, H, W) to features (B, D, H, W). The diffusion
one noises the image (or, for a latent model, its autoencoder latent) to a few timesteps and reads
U-Net blocks (:mod:`ddpm.models.unet_features`); baselines read raw pixels or an autoencoder's
encoder. A *segmentation head* is a trained :class:`PixelClassifier` saved with the feature
recipe and the identity (weights digest) of the diffusion model whose features it reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from ddpm.checkpoints import read_meta, read_tensors, write_checkpoint
from ddpm.configuration import from_dict, to_dict
from ddpm.errors import UserError
from ddpm.models.segmentation_head import PixelClassifier, PixelHeadConfig
from ddpm.models.unet import UNet
from ddpm.models.unet_features import capture_outputs, default_blocks, diffusion_features, upsample_concat
from ddpm.pipelines.autoencoders import LoadedAutoencoder, weights_digest
from ddpm.pipelines.loading import LoadedModel, load_model
from ddpm.pipelines.locate import pretrained_names, resolve_checkpoint
from ddpm.runtime import progress_bar
from ddpm.schedules import NoiseSchedule
from ddpm.training.segmentation import PixelTrainConfig, train_pixel_classifier

FeatureFn = Callable[[torch.Tensor], torch.Tensor]
HEAD_TYPE = "segmentation-head"
HEAD_FOLDER = "segmentation"  # a model folder's own head: MODEL/segmentation/


@dataclass
class FeatureSpec:
    """Which activations make a pixel's feature vector (Baranchuk et al. 2022, Sec. 3)."""

    timesteps: tuple[int, ...] = field(default=(50, 150, 250), metadata={"help": "noise levels t (0 … T−1)"})
    blocks: tuple[str, ...] = field(
        default=(), metadata={"help": "U-Net blocks; empty = the model's middle decoder blocks"}
    )
    draws: int = field(default=1, metadata={"help": "noise draws averaged per timestep"})
    seed: int = field(default=0, metadata={"help": "seed of the fixed noise"})

    def __post_init__(self) -> None:
        self.timesteps, self.blocks = tuple(int(t) for t in self.timesteps), tuple(self.blocks)

    def for_network(self, unet: UNet) -> FeatureSpec:
        """This recipe with its blocks filled in (:func:`default_blocks`) if none were chosen."""
        return replace(self, blocks=self.blocks or default_blocks(unet))


def diffusion_feature_fn(
    unet: UNet,
    schedule: NoiseSchedule,
    spec: FeatureSpec,
    autoencoder: LoadedAutoencoder | None = None,
    chunk: int = 16,
) -> FeatureFn:
    """Features of a pixel U-Net, or of a latent one (the image is encoded to the posterior mean
    times the scale factor, and the latent-resolution maps are upsampled to the image's size)."""
    spec = spec.for_network(unet)

    def extract(images: torch.Tensor) -> torch.Tensor:
        x = images
        if autoencoder is not None:
            device = next(autoencoder.model.parameters()).device
            with torch.no_grad():
                x = autoencoder.model.encode(images.to(device).float()).mean.cpu() * autoencoder.scale_factor
        return diffusion_features(
            unet,
            x,
            schedule,
            spec.timesteps,
            spec.blocks,
            size=images.shape[-1],
            draws=spec.draws,
            seed=spec.seed,
            chunk=chunk,
        )

    return extract


def model_feature_fn(loaded: LoadedModel, spec: FeatureSpec, chunk: int = 16) -> FeatureFn:
    """:func:`diffusion_feature_fn` of a loaded model (its autoencoder included)."""
    c = loaded.config.model
    if c.num_classes or c.cond_channels or c.context_dim or c.aug_level:
        raise UserError("segmentation features need an unconditional model (no classes, images or text)")
    return diffusion_feature_fn(loaded.model, loaded.schedule, spec, loaded.autoencoder, chunk)


def raw_pixel_features(patch: int = 5) -> FeatureFn:
    """Baseline: each pixel's colours in a ``patch``×``patch`` neighbourhood (reflect-padded) plus
    its (row, column) position in [−1, 1]."""

    def extract(images: torch.Tensor) -> torch.Tensor:
        b, c, h, w = images.shape
        padded = F.pad(images.float(), [patch // 2] * 4, mode="reflect")
        local = F.unfold(padded, patch).reshape(b, c * patch * patch, h, w)
        rows = torch.linspace(-1, 1, h).view(1, 1, h, 1).expand(b, 1, h, w)
        cols = torch.linspace(-1, 1, w).view(1, 1, 1, w).expand(b, 1, h, w)
        return torch.cat([local, rows, cols], dim=1)

    return extract


def encoder_feature_fn(autoencoder: LoadedAutoencoder, chunk: int = 16) -> FeatureFn:
    """Baseline: the outputs of every ResNet block and the middle of an autoencoder's encoder,
    upsampled to the image's size and concatenated."""
    named = autoencoder.model.encoder.feature_blocks()
    device = next(autoencoder.model.parameters()).device

    @torch.no_grad()
    def extract(images: torch.Tensor) -> torch.Tensor:
        out = []
        for start in range(0, len(images), chunk):
            x = images[start : start + chunk].to(device).float()
            maps = capture_outputs(named, list(named), lambda x=x: autoencoder.model.encoder(x))
            out.append(upsample_concat(maps, images.shape[-1]).cpu())
        return torch.cat(out)

    return extract


def extract_features(
    fn: FeatureFn, images: torch.Tensor, chunk: int = 32, dtype=torch.float16, progress: bool = False
) -> torch.Tensor:
    """(B, D, H, W) features of many images, ``chunk`` at a time, stored as ``dtype``."""
    parts = []
    for start in progress_bar(range(0, len(images), chunk), desc="features", enabled=progress):
        parts.append(fn(images[start : start + chunk]).to(dtype))
    return torch.cat(parts)


def pixel_table(features: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, D, H, W) features and (B, H, W) labels → one row per pixel: (BHW, D) and (BHW,)."""
    d = features.shape[1]
    return features.permute(0, 2, 3, 1).reshape(-1, d), labels.reshape(-1).long()


def fit_pixel_segmenter(
    fn: FeatureFn,
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    hidden: tuple[int, ...] = (256, 128),
    members: int = 3,
    train: PixelTrainConfig | None = None,
    progress: bool = True,
) -> PixelClassifier:
    """Train the MLP ensemble on every pixel of the labelled images (features kept as float16)."""
    x, y = pixel_table(extract_features(fn, images, progress=progress), labels)
    head = PixelHeadConfig(in_features=x.shape[1], num_classes=num_classes, hidden=hidden, members=members)
    return train_pixel_classifier(x, y, head, train, progress=progress)


@torch.no_grad()
def predict_parts(
    fn: FeatureFn, classifier: PixelClassifier, images: torch.Tensor, chunk: int = 32
) -> torch.Tensor:
    """(B, H, W) most likely class of every pixel."""
    out = []
    for start in range(0, len(images), chunk):
        feats = fn(images[start : start + chunk])
        x, _ = pixel_table(feats, torch.zeros(0))
        probs = classifier.probabilities(x)
        b, _, h, w = feats.shape
        out.append(probs.argmax(-1).reshape(b, h, w))
    return torch.cat(out)


@dataclass(kw_only=True)
class SegmentationHead:
    """A trained per-pixel classifier with what it needs to be used again: the feature recipe,
    the part names, and the diffusion model it reads (source and weights digest)."""

    classifier: PixelClassifier
    spec: FeatureSpec
    parts: tuple[str, ...]
    model_source: str
    model_digest: str
    metrics: dict = field(default_factory=dict)
    path: Path | None = None

    def save(self, directory: str | Path) -> Path:
        """Write ``head.safetensors`` + ``checkpoint.json`` atomically."""
        meta = {
            "model_type": HEAD_TYPE,
            "head": to_dict(self.classifier.config),
            "features": to_dict(self.spec),
            "parts": list(self.parts),
            "diffusion_model": {"source": self.model_source, "digest": self.model_digest},
            "metrics": self.metrics,
        }
        return write_checkpoint(directory, {"head": self.classifier.state_dict()}, meta)


def model_identity(loaded: LoadedModel, name_or_path: str | Path) -> tuple[str, str]:
    """(source, digest) of a diffusion model: a pretrained name or an absolute path, and the
    SHA-256 of its weights."""
    named = str(name_or_path) in pretrained_names() and not Path(name_or_path).exists()
    return (str(name_or_path) if named else str(loaded.path.resolve())), weights_digest(
        loaded.model.state_dict()
    )


def is_segmentation_head(meta: dict) -> bool:
    return meta.get("model_type") == HEAD_TYPE


def load_segmentation_head(path: str | Path) -> SegmentationHead:
    """A head checkpoint folder, validated."""
    meta = read_meta(path)
    if not is_segmentation_head(meta):
        raise UserError(f"{path} is not a segmentation head (train one with 'ddpm segment-train')")
    try:
        config = from_dict(PixelHeadConfig, meta["head"])
        spec = from_dict(FeatureSpec, meta["features"])
        record = meta["diffusion_model"]
        parts = tuple(meta["parts"])
        source, digest = record["source"], record["digest"]
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"segmentation head {path} has an incomplete checkpoint.json ({err})") from None
    classifier = PixelClassifier(config)
    try:
        classifier.load_state_dict(read_tensors(path, "head"))
    except RuntimeError as err:
        raise UserError(
            f"weights in {path} do not match its configuration: {str(err).splitlines()[0]}"
        ) from None
    return SegmentationHead(
        classifier=classifier.eval(),
        spec=spec,
        parts=parts,
        model_source=source,
        model_digest=digest,
        metrics=meta.get("metrics") or {},
        path=Path(path),
    )


def locate_head(model: str | Path, head: str | Path | None) -> tuple[str | Path, SegmentationHead]:
    """(diffusion model, its head) for ``ddpm segment MODEL [--head DIR]``: MODEL may be a head
    itself (which names its model), or a model with a ``segmentation/`` folder of its own."""
    path = resolve_checkpoint(model)
    if is_segmentation_head(read_meta(path)):
        if head is not None:
            raise UserError(f"{model} is a segmentation head already; drop --head or give a diffusion model")
        found = load_segmentation_head(path)
        return found.model_source, found
    if head is not None:
        return model, load_segmentation_head(resolve_checkpoint(head))
    own = path / HEAD_FOLDER
    if (own / "checkpoint.json").is_file():
        return model, load_segmentation_head(own)
    raise UserError(
        f"{model} has no segmentation head; train one with 'ddpm segment-train {model} --out HEAD' "
        "and pass --head HEAD"
    )


@dataclass(kw_only=True)
class Segmenter:
    """A diffusion model and a head trained on its features, checked to belong together."""

    loaded: LoadedModel
    head: SegmentationHead

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """(B, H, W) part ids of images in [−1, 1] of the model's shape."""
        shape = tuple(images.shape[1:])
        if shape != self.loaded.image_shape:
            c, s, _ = self.loaded.image_shape
            raise UserError(
                f"the image is {shape[0]}×{shape[1]}×{shape[2]} (channels×height×width) but this model "
                f"segments {c}×{s}×{s} images; resize it to {s}×{s}"
            )
        return predict_parts(model_feature_fn(self.loaded, self.head.spec), self.head.classifier, images)


def load_segmenter(model: str | Path, head: str | Path | None = None, device: str = "auto") -> Segmenter:
    """The model and its head (see :func:`locate_head`); a head trained on another model's
    features is refused with a one-line error."""
    model_ref, seg_head = locate_head(model, head)
    loaded = load_model(model_ref, device=device)
    _, digest = model_identity(loaded, model_ref)
    if digest != seg_head.model_digest:
        raise UserError(
            f"the segmentation head {seg_head.path} was trained on the features of another model "
            f"({seg_head.model_source}); train one for {model_ref} with 'ddpm segment-train'"
        )
    return Segmenter(loaded=loaded, head=seg_head)
