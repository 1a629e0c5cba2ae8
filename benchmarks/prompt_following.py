"""How well does a text-conditional emoji model follow its prompt? A CLIP-free retrieval test.

For every guidance scale w, one sample per prompt from fixed seeds; each sample's nearest training
image (16×16 pixel features, ``ddpm.eval.prompt_following``) is retrieved.

- Seen prompts (training captions): is the retrieved image the prompt's own (top-1, top-5)? Is it
  of the prompt's category (smileys, flags, food...)?
- Held-out prompts (captions of the test split, never trained on): is the retrieved training
  image of the held-out emoji's category, and how close is its caption to the prompt (cosine of
  MiniLM sentence embeddings)?

Chance levels and a reference row (the real held-out image retrieved the same way) come with
every score; w = 0 ignores the prompt, so it is the measured chance row. Writes
results/prompt_following.{json,md} and a figure (one column per prompt, one row per w, the real
emoji last).

    python benchmarks/prompt_following.py CHECKPOINT [--num 200] [--scales 0,1,3,5] [--steps 25] [--name N]
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np
import torch
from common import RESULTS, timed, write_results

from ddpm.data.emoji import default_emoji_dir, load_emoji
from ddpm.eval.prompt_following import (
    caption_closeness,
    category_agreement,
    nearest_indices,
    retrieval_features,
    seen_prompt_scores,
    sentence_embeddings,
)
from ddpm.imaging import make_image_grid, save_image, to_uint8
from ddpm.models.text_encoder import TextEncoder
from ddpm.pipelines import generate, load_model

FIGURE_PROMPTS = (
    "smiling face with sunglasses",
    "red apple",
    "dog face",
    "pile of poo",
    "sun with face",
    "ghost",
    "rocket",
    "birthday cake",
)


def as_nchw(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()


def heldout_scores(neighbours, prompts_embeds, prompt_cats, train_embeds, train_cats) -> dict:
    category, chance = category_agreement(train_cats[neighbours[:, 0]], prompt_cats, train_cats)
    return {
        "category": category,
        "chance_category": chance,
        **caption_closeness(prompts_embeds, train_embeds[neighbours[:, 0]], train_embeds),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("--num", type=int, default=200, help="seen prompts and held-out prompts, each")
    p.add_argument("--scales", default="0,1,3,5")
    p.add_argument("--steps", type=int, default=25, help="sampler steps")
    p.add_argument("--data", help="built emoji folder (default: the cache)")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--device", default="cpu")
    p.add_argument("--name", default="prompt_following", help="results/NAME.{json,md,png}")
    args = p.parse_args()

    loaded = load_model(args.checkpoint, device=args.device)
    if not loaded.config.model.context_dim:
        raise SystemExit(f"{args.checkpoint} is not text-conditional")
    size = loaded.image_shape[1]  # decoded size for a latent model
    sampler = replace(loaded.config.sample, steps=args.steps)
    root = args.data or default_emoji_dir()
    train_images, train_captions, train_cats = load_emoji(root, size, "train")
    test_images, test_captions, test_cats = load_emoji(root, size, "test")
    encoder = TextEncoder()
    train_embeds = sentence_embeddings(*encoder(train_captions))
    train_feats = retrieval_features(as_nchw(train_images))

    g = np.random.default_rng(0)
    seen = g.choice(len(train_captions), min(args.num, len(train_captions)), replace=False)
    held = g.choice(len(test_captions), min(args.num, len(test_captions)), replace=False)
    seen_prompts = [train_captions[i] for i in seen]
    held_prompts = [test_captions[i] for i in held]
    held_embeds = sentence_embeddings(*encoder(held_prompts))

    real_neighbours = nearest_indices(retrieval_features(as_nchw(test_images[held])), train_feats)
    reference = heldout_scores(real_neighbours, held_embeds, test_cats[held], train_embeds, train_cats)
    rows, figure_rows = [], []
    for w in map(float, args.scales.split(",")):
        out, seconds = timed(
            generate,
            loaded,
            len(seen_prompts) + len(held_prompts) + len(FIGURE_PROMPTS),
            seed=0,
            sampler=sampler,
            prompts=seen_prompts + held_prompts + list(FIGURE_PROMPTS),
            guidance=w,
            batch_size=args.batch_size,
            progress=False,
        )
        images = out.images
        n_seen, n_held = len(seen_prompts), len(held_prompts)
        neighbours = nearest_indices(retrieval_features(images), train_feats)
        row = {
            "guidance": w,
            "seconds": round(seconds, 1),
            "seen": seen_prompt_scores(neighbours[:n_seen], seen, train_cats),
            "heldout": heldout_scores(
                neighbours[n_seen : n_seen + n_held], held_embeds, test_cats[held], train_embeds, train_cats
            ),
        }
        rows.append(row)
        figure_rows.append(to_uint8(images[n_seen + n_held :]))
        s, h = row["seen"], row["heldout"]
        print(
            f"w {w:g}: seen top1 {s['top1']:.3f} top5 {s['topk']:.3f} category {s['category']:.3f}; "
            f"held-out category {h['category']:.3f} caption cos {h['caption_cosine']:.3f}  {seconds:.0f} s",
            flush=True,
        )

    index = {c: i for i, c in enumerate(train_captions)}
    real = [as_nchw(train_images[[index[c]]]) if c in index else None for c in FIGURE_PROMPTS]
    blank = torch.full((1, 3, size, size), 255, dtype=torch.uint8)
    figure_rows.append(torch.cat([r if r is not None else blank for r in real]))
    RESULTS.mkdir(parents=True, exist_ok=True)
    grid = make_image_grid(torch.cat(figure_rows), nrow=len(FIGURE_PROMPTS))
    save_image(grid, RESULTS / f"{args.name}.png", scale=max(1, 64 // size))

    s0 = rows[0]["seen"]
    lines = [
        f"{len(seen_prompts)} seen and {len(held_prompts)} held-out prompts, one sample each, "
        f"{sampler.sampler} {sampler.steps} steps; retrieval among {len(train_captions)} training emoji "
        "by 16×16 pixel features.",
        "",
        "| w | seen: own image top-1 | top-5 | category | held-out: category | caption cosine |",
        "|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {r['guidance']:g} | {r['seen']['top1']:.3f} | {r['seen']['topk']:.3f} | "
            f"{r['seen']['category']:.3f} | {r['heldout']['category']:.3f} | "
            f"{r['heldout']['caption_cosine']:.3f} |"
            for r in rows
        ),
        f"| real held-out emoji | – | – | – | {reference['category']:.3f} | "
        f"{reference['caption_cosine']:.3f} |",
        f"| chance | {s0['chance_top1']:.4f} | {s0['chance_topk']:.4f} | {s0['chance_category']:.3f} | "
        f"{rows[0]['heldout']['chance_category']:.3f} | {rows[0]['heldout']['chance_caption_cosine']:.3f} |",
        "",
        f"Figure (`{args.name}.png`): columns "
        + ", ".join(f"“{c}”" for c in FIGURE_PROMPTS)
        + "; rows w = "
        + ", ".join(args.scales.split(","))
        + ", then the real emoji.",
    ]
    write_results(
        args.name,
        {
            "checkpoint": str(loaded.path),
            "sampler": sampler.sampler,
            "steps": sampler.steps,
            "seen_prompts": seen_prompts,
            "heldout_prompts": held_prompts,
            "rows": rows,
            "real_heldout": reference,
        },
        lines,
    )


if __name__ == "__main__":
    main()
