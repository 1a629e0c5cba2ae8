"""The CLIP-free prompt-following scores: retrieval, pooling and their chance levels."""

import numpy as np
import torch

from ddpm.eval.prompt_following import (
    caption_closeness,
    category_agreement,
    nearest_indices,
    retrieval_features,
    seen_prompt_scores,
    sentence_embeddings,
)


def test_nearest_indices_match_a_full_sort():
    rng = np.random.default_rng(0)
    q, ref = rng.normal(size=(20, 12)), rng.normal(size=(50, 12))
    full = np.linalg.norm(q[:, None] - ref[None], axis=-1).argsort(1)[:, :5]
    assert np.array_equal(nearest_indices(q, ref, k=5), full)


def test_retrieval_features_agree_for_uint8_and_float_images():
    g = torch.Generator().manual_seed(0)
    u8 = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8, generator=g)
    as_float = u8.float() / 127.5 - 1
    a, b = retrieval_features(u8, size=16), retrieval_features(as_float, size=16)
    assert a.shape == (3, 3 * 16 * 16)
    np.testing.assert_allclose(a, b, atol=1e-6)
    # box filter: each feature is the mean of a 2×2 block
    np.testing.assert_allclose(a[0, 0], as_float[0, 0, :2, :2].mean().item(), atol=1e-6)


def test_sentence_embeddings_ignore_padding_and_are_unit_norm():
    g = torch.Generator().manual_seed(0)
    states = torch.randn(2, 6, 8, generator=g)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    e = sentence_embeddings(states, mask)
    changed = states.clone()
    changed[0, 3:] = 100.0
    np.testing.assert_allclose(sentence_embeddings(changed, mask), e)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0)
    manual = states[0, :3].mean(0).double()
    np.testing.assert_allclose(e[0], (manual / manual.norm()).numpy(), atol=1e-12)


def test_seen_scores_are_perfect_for_perfect_retrieval_and_near_chance_for_random():
    rng = np.random.default_rng(1)
    categories = rng.choice(["a", "b", "c"], size=400, p=[0.6, 0.3, 0.1])
    targets = rng.choice(400, size=4000)
    perfect = np.stack([targets, (targets + 1) % 400], 1)
    s = seen_prompt_scores(perfect, targets, categories)
    assert s["top1"] == s["topk"] == s["category"] == 1.0
    random = rng.choice(400, size=(4000, 5))
    r = seen_prompt_scores(random, targets, categories)
    assert r["chance_top1"] == 1 / 400 and r["chance_topk"] == 5 / 400
    assert abs(r["topk"] - r["chance_topk"]) < 0.01
    # chance of a category match for random retrieval: Σ p_c q_c ≈ 0.36 + 0.09 + 0.01 here
    assert abs(r["category"] - r["chance_category"]) < 0.03
    assert 0.4 < r["chance_category"] < 0.52


def test_category_agreement_chance_uses_the_pool_distribution():
    pool = np.array(["x"] * 9 + ["y"])
    rate, chance = category_agreement(np.array(["x", "y"]), np.array(["x", "y"]), pool)
    assert rate == 1.0 and abs(chance - (0.9 + 0.1) / 2) < 1e-12


def test_caption_closeness_of_identical_embeddings_is_one():
    rng = np.random.default_rng(2)
    e = rng.normal(size=(10, 4))
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    c = caption_closeness(e, e, e)
    assert abs(c["caption_cosine"] - 1) < 1e-12
    assert c["chance_caption_cosine"] < 1
