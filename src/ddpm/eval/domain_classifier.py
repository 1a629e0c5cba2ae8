"""A small Fashion-MNIST classifier: a fast, in-domain feature space for sample quality.

Its 128-d penultimate features give a Fréchet distance ("domain FD") in seconds, and its
predictions give the class histogram of generated images. It is trained by this project on
the training split, so its numbers are comparable only within this project (unlike FID). Its
weights ship with the package (``weights/``); :func:`main` reproduces them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ddpm.checkpoints import read_meta, read_tensors, write_checkpoint
from ddpm.data import load_fashion_mnist
from ddpm.errors import UserError
from ddpm.fileio import cache_dir
from ddpm.imaging import to_model_range
from ddpm.runtime import progress_bar

VERSION = "fashion-mnist-cnn-v1"
FEATURE_DIM = 128


class SmallCNN(nn.Module):
    """conv ×2 → pool (16²) → conv ×2 → pool (8²) → conv → pool (4²) → 128-d features → 10 logits."""

    def __init__(self, num_classes: int = 10):
        super().__init__()

        def conv(i, o):
            return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU())

        self.body = nn.Sequential(
            conv(1, 32),
            conv(32, 32),
            nn.MaxPool2d(2),
            conv(32, 64),
            conv(64, 64),
            nn.MaxPool2d(2),
            conv(64, 128),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(128 * 16, FEATURE_DIM),
            nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(FEATURE_DIM, num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 32, 32) images in [−1, 1] → (B, 128) penultimate features."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@dataclass
class DomainClassifier:
    model: SmallCNN
    test_accuracy: float
    path: Path

    @torch.no_grad()
    def features_and_logits(
        self, images: torch.Tensor, batch_size: int = 500
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (N, 128) and logits (N, 10) of images in [−1, 1] (or uint8)."""
        if images.dtype == torch.uint8:
            images = to_model_range(images)
        if images.shape[1:] != (1, 32, 32):
            raise UserError(f"the domain classifier takes 1×32×32 images, got {tuple(images.shape[1:])}")
        feats, logits = [], []
        for start in range(0, len(images), batch_size):
            f = self.model.features(images[start : start + batch_size].float())
            feats.append(f)
            logits.append(self.model.head(f))
        return torch.cat(feats), torch.cat(logits)


def train_domain_classifier(
    epochs: int = 3, batch_size: int = 128, seed: int = 0, data_root: str = "", progress: bool = True
) -> tuple[SmallCNN, float]:
    """Train :class:`SmallCNN` on Fashion-MNIST train; return it with its test-split accuracy."""
    train = load_fashion_mnist(data_root, "train", 32)
    test = load_fashion_mnist(data_root, "test", 32)
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = SmallCNN()
        steps = epochs * (len(train) // batch_size)
        opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
        bar = progress_bar(total=steps, desc="training the domain classifier", enabled=progress)
        model.train()
        for _ in range(epochs):
            perm = torch.randperm(len(train), generator=g)
            for i in range(len(train) // batch_size):
                idx = perm[i * batch_size : (i + 1) * batch_size]
                x = to_model_range(train.images[idx])
                flip = torch.rand(len(x), generator=g) < 0.5
                x = torch.where(flip[:, None, None, None], x.flip(-1), x)
                loss = F.cross_entropy(model(x), train.labels[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}")
        bar.close()
    model.eval()
    classifier = DomainClassifier(model=model, test_accuracy=0.0, path=Path())
    _, logits = classifier.features_and_logits(test.images)
    accuracy = (logits.argmax(1) == test.labels).float().mean().item()
    return model, accuracy


PACKAGED = Path(__file__).parent / "weights" / VERSION
REPRODUCE = "OMP_NUM_THREADS=1 python -m ddpm.eval.domain_classifier --out src/ddpm/eval/weights/" + VERSION


def load_domain_classifier(folder: str | Path | None = None, progress: bool = True) -> DomainClassifier:
    """The classifier in ``folder``; by default the weights shipped with the package (trained by
    ``REPRODUCE``), else the cache folder ($DDPM_CACHE), where it is trained (minutes on 2 CPU
    cores) and kept on first use if neither exists."""
    if folder is not None:
        path = Path(folder) / VERSION
    elif (PACKAGED / "checkpoint.json").is_file():
        path = PACKAGED
    else:
        path = cache_dir() / VERSION
    if not (path / "checkpoint.json").is_file():
        save_domain_classifier(path, progress=progress)
    meta = read_meta(path)
    model = SmallCNN()
    model.load_state_dict(read_tensors(path, "model"))
    return DomainClassifier(
        model=model.eval().requires_grad_(False), test_accuracy=float(meta["test_accuracy"]), path=path
    )


def save_domain_classifier(path: str | Path, seed: int = 0, progress: bool = True) -> float:
    """Train the classifier with the default recipe and write it to ``path``; its test accuracy."""
    model, accuracy = train_domain_classifier(seed=seed, progress=progress)
    meta = {"kind": "domain-classifier", "classifier": VERSION, "seed": seed, "test_accuracy": accuracy}
    write_checkpoint(path, {"model": model.state_dict()}, meta)
    return accuracy


def main(argv: list[str] | None = None) -> None:
    """Reproduce the shipped weights: ``python -m ddpm.eval.domain_classifier --out DIR``."""
    import argparse

    parser = argparse.ArgumentParser(description="Train the Fashion-MNIST domain classifier.")
    parser.add_argument("--out", required=True, help="folder to write (replaced atomically)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial weights and batches")
    args = parser.parse_args(argv)
    accuracy = save_domain_classifier(args.out, seed=args.seed)
    print(f"wrote {args.out}: test accuracy {accuracy:.4f}")


if __name__ == "__main__":
    main()
