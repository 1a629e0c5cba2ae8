"""Prompt following without CLIP: retrieve each sample's nearest training image and ask whether that
image's caption is the prompt (prompts seen in training) or close to it (held-out prompts).

Retrieval runs on small pixel features (images box-filtered to ``size``×``size``): emoji are centred
on white, so a sample that draws the prompt lands next to the training image of that prompt. Caption
closeness is the cosine of sentence embeddings: masked mean of the frozen encoder's token states
(the pooling all-MiniLM-L6-v2 was trained with). Every score comes with its chance level.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def retrieval_features(images: torch.Tensor, size: int = 16) -> np.ndarray:
    """(N, C, H, W) images in [−1, 1] or uint8 → (N, C·size²) float64 pixel features in [−1, 1]."""
    x = images.float()
    if images.dtype == torch.uint8:
        x = x / 127.5 - 1
    if x.shape[-1] != size:
        x = F.adaptive_avg_pool2d(x, size)
    return x.flatten(1).double().numpy()


def nearest_indices(queries: np.ndarray, reference: np.ndarray, k: int = 5) -> np.ndarray:
    """(N, k) indices of each query's k nearest reference rows by Euclidean distance, nearest first."""
    d = (queries * queries).sum(1)[:, None] + (reference * reference).sum(1)[None] - 2 * queries @ reference.T
    part = np.argpartition(d, min(k, d.shape[1] - 1), axis=1)[:, :k]
    order = np.take_along_axis(d, part, 1).argsort(1)
    return np.take_along_axis(part, order, 1)


def sentence_embeddings(states: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    """Unit-norm masked mean of token states (B, T, D) over real tokens (mask (B, T) True) → (B, D)."""
    m = mask.unsqueeze(-1).to(states.dtype)
    mean = (states * m).sum(1) / m.sum(1).clamp_min(1)
    return F.normalize(mean.double(), dim=-1).numpy()


def category_agreement(retrieved: np.ndarray, targets: np.ndarray, pool: np.ndarray) -> tuple[float, float]:
    """(share of samples whose retrieved image's category equals the prompt's, its chance level
    Σ_c p_c·q_c with p over the prompts' categories and q over the ``pool`` retrieved from)."""
    cats, counts = np.unique(pool, return_counts=True)
    q = dict(zip(cats.tolist(), (counts / len(pool)).tolist(), strict=True))
    return float((retrieved == targets).mean()), float(np.mean([q.get(c, 0.0) for c in targets.tolist()]))


def seen_prompt_scores(
    neighbours: np.ndarray, targets: np.ndarray, categories: np.ndarray
) -> dict[str, float]:
    """Prompts that are training captions: ``neighbours`` (N, k) retrieved training indices, ``targets``
    (N,) the index of each prompt's own training image, ``categories`` (M,) of the training images.

    top1 / topk: the prompt's own image is the nearest / among the k nearest (chance 1/M, k/M);
    category: the nearest image shares the prompt's category (see :func:`category_agreement`)."""
    m, k = len(categories), neighbours.shape[1]
    category, chance = category_agreement(categories[neighbours[:, 0]], categories[targets], categories)
    return {
        "top1": float((neighbours[:, 0] == targets).mean()),
        "topk": float((neighbours == targets[:, None]).any(1).mean()),
        "k": int(k),
        "category": category,
        "chance_top1": 1 / m,
        "chance_topk": k / m,
        "chance_category": chance,
    }


def caption_closeness(prompt_embeds: np.ndarray, retrieved_embeds: np.ndarray, pool_embeds: np.ndarray):
    """Held-out prompts: mean cosine between each prompt and the caption of its sample's nearest
    training image, and its chance level (mean cosine between a prompt and a random training caption)."""
    return {
        "caption_cosine": float((prompt_embeds * retrieved_embeds).sum(1).mean()),
        "chance_caption_cosine": float((prompt_embeds @ pool_embeds.T).mean()),
    }
