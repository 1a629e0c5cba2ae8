"""Segmentation of the faces' parts from diffusion features with few labelled images, against
baselines in the same run (the seed's "diffusion for segmentation"; Baranchuk et al. 2022).

Every arm sees the same N labelled training faces (nested prefixes of one seeded draw from the
train split, so N = 5 ⊂ 10 ⊂ 20 …) and is scored on the same held-out faces (the test split,
never seen by the diffusion models either) by mIoU over the 11 parts:

- ``diffusion``: the trained model's U-Net features (default :class:`FeatureSpec`: t = 50, 150, 250;
  decoder blocks dec2–dec5) → ensemble of 3 MLPs;
- ``random``: the same pipeline on the same architecture with random weights;
- ``pixels``: the MLP ensemble on raw pixels (5×5 colour neighbourhood + position);
- ``supervised``: the U-Net architecture trained from scratch on the N images, flips and crops;
- ``autoencoder`` (64 px): the MLP ensemble on the latent model's autoencoder's encoder features.

``heatmap`` scores single (timestep, block) features at N = 20 on 100 validation faces from the
train split (not the test split), as the anchor's Figure 2 does.

    python benchmarks/segmentation_features.py sweep --size 32 --out runs/seg32
    python benchmarks/segmentation_features.py sweep --size 64 --out runs/seg64
    python benchmarks/segmentation_features.py heatmap --size 32
    python benchmarks/segmentation_features.py figure --run runs/seg32
    python benchmarks/segmentation_features.py report

``sweep`` and ``heatmap`` write results/segmentation_features/*.json as they go (arms can run in
parallel, one thread each); ``report`` gathers them into results/segmentation_features.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from common import RESULTS, write_results

from ddpm.data.faces import PARTS, default_faces_dir, load_faces
from ddpm.eval.segmentation import confusion_matrix, segmentation_report
from ddpm.imaging import to_model_range
from ddpm.models import UNet
from ddpm.models.segmentation_head import PixelHeadConfig
from ddpm.models.unet_features import diffusion_features, unet_blocks
from ddpm.pipelines import load_model
from ddpm.pipelines.experiment import load_experiment_config
from ddpm.pipelines.segmentation import (
    FeatureSpec,
    SegmentationHead,
    diffusion_feature_fn,
    encoder_feature_fn,
    fit_pixel_segmenter,
    model_identity,
    pixel_table,
    predict_parts,
    raw_pixel_features,
)
from ddpm.training.segmentation import (
    PixelTrainConfig,
    SupervisedConfig,
    segment_with_unet,
    train_pixel_classifier,
    train_supervised_unet,
)

PARTS_DIR = RESULTS / "segmentation_features"
MODELS = {32: "faces", 64: "faces64"}
SUPERVISED_ARCH = {32: "faces", 64: "faces64-pixel"}
K = len(PARTS)


def faces(size: int, pool: int = 200, val: int = 100, test: int = 300, seed: int = 0):
    """(labelled pool, validation, test) as (images in [−1, 1], labels) pairs."""
    images, labels, _ = load_faces(default_faces_dir(), size, "train")
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))

    def pick(imgs, labs, idx):
        return to_model_range(torch.from_numpy(imgs[idx]).permute(0, 3, 1, 2)), torch.from_numpy(
            labs[idx]
        ).long()

    t_images, t_labels, _ = load_faces(default_faces_dir(), size, "test")
    return (
        pick(images, labels, order[:pool].numpy()),
        pick(images, labels, order[pool : pool + val].numpy()),
        pick(t_images, t_labels, slice(0, test)),
    )


def score(pred: torch.Tensor, labels: torch.Tensor) -> dict:
    return segmentation_report(confusion_matrix(pred, labels, K), PARTS)


def save_part(name: str, entry: dict) -> None:
    PARTS_DIR.mkdir(parents=True, exist_ok=True)
    path = PARTS_DIR / f"{name}.json"
    data = json.loads(path.read_text()) if path.is_file() else {"entries": []}
    data["entries"] = [e for e in data["entries"] if (e["arm"], e["n"]) != (entry["arm"], entry["n"])]
    data["entries"].append(entry)
    path.write_text(json.dumps(data, indent=2) + "\n")


def random_like(unet: UNet, seed: int = 0) -> UNet:
    torch.manual_seed(seed)
    return UNet(unet.config).eval().requires_grad_(False)


def sweep(args) -> None:
    torch.set_num_threads(args.threads)
    (px, py), _, (tx, ty) = faces(args.size, test=args.test, seed=args.pool_seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    loaded = load_model(MODELS[args.size], device="cpu")
    spec = FeatureSpec(blocks=("dec2", "dec3", "dec4", "dec5"))
    coder = loaded.autoencoder
    fns = {
        "diffusion": diffusion_feature_fn(loaded.model, loaded.schedule, spec, coder),
        "random": diffusion_feature_fn(random_like(loaded.model), loaded.schedule, spec, coder),
        "pixels": raw_pixel_features(),
    }
    if coder is not None:
        fns["autoencoder"] = encoder_feature_fn(coder)
    train = PixelTrainConfig(steps=args.mlp_steps, balanced=args.balanced)
    for n in [int(v) for v in args.ns.split(",")]:
        x, y = px[:n], py[:n]
        for arm in args.arms.split(","):
            if arm not in fns and arm != "supervised":
                continue
            start = time.perf_counter()
            if arm == "supervised":
                arch = load_experiment_config(SUPERVISED_ARCH[args.size]).model
                net = train_supervised_unet(x, y, arch, K, SupervisedConfig(steps=args.supervised_steps))
                trained = time.perf_counter() - start
                pred = segment_with_unet(net, tx)
                if n == 20 and not args.tag:
                    from safetensors.torch import save_file

                    save_file(net.state_dict(), str(out / "supervised-20.safetensors"))
            else:
                clf = fit_pixel_segmenter(fns[arm], x, y, K, train=train)
                trained = time.perf_counter() - start
                pred = predict_parts(fns[arm], clf, tx)
                if arm == "diffusion" and n == 20 and not args.tag:
                    source, digest = model_identity(loaded, MODELS[args.size])
                    SegmentationHead(
                        classifier=clf,
                        spec=spec,
                        parts=PARTS,
                        model_source=source,
                        model_digest=digest,
                        metrics={"test_miou": score(pred, ty)["miou"], "labelled": n},
                    ).save(out / "head-20")
            entry = {"arm": arm + args.tag, "n": n, "train_seconds": trained, **score(pred, ty)}
            save_part(f"sweep-{args.size}", entry)
            print(f"{args.size}px N={n:3d} {arm:12s} mIoU {entry['miou']:.3f} ({trained:.0f} s)", flush=True)


def heatmap(args) -> None:
    torch.set_num_threads(args.threads)
    (px, py), (vx, vy), _ = faces(args.size)
    x, y = px[: args.n], py[: args.n]
    loaded = load_model(MODELS[args.size], device="cpu")
    coder = loaded.autoencoder
    names = list(unet_blocks(loaded.model))
    train = PixelTrainConfig(steps=args.mlp_steps)
    rows = []
    for t in [int(v) for v in args.timesteps.split(",")]:

        def feats(images, t=t):
            z = images
            if coder is not None:
                with torch.no_grad():
                    z = coder.model.encode(images).mean * coder.scale_factor
            return diffusion_features(loaded.model, z, loaded.schedule, [t], names, size=args.size, chunk=32)

        ftrain, fval = feats(x), feats(vx)
        offset = 0
        for name, channels in zip(names, _channels(loaded.model, names), strict=True):
            cols = slice(offset, offset + channels)
            offset += channels
            xs, ys = pixel_table(ftrain[:, cols], y)
            head = PixelHeadConfig(in_features=channels, num_classes=K, hidden=(128, 64), members=1)
            clf = train_pixel_classifier(xs, ys, head, train, progress=False)
            pred = clf.probabilities(pixel_table(fval[:, cols], vy)[0]).argmax(-1).reshape(vy.shape)
            miou = score(pred, vy)["miou"]
            rows.append({"t": t, "block": name, "miou": miou})
            print(f"{args.size}px t={t:4d} {name:6s} mIoU {miou:.3f}", flush=True)
    PARTS_DIR.mkdir(parents=True, exist_ok=True)
    (PARTS_DIR / f"heatmap-{args.size}.json").write_text(
        json.dumps({"n": args.n, "validation": len(vx), "mlp_steps": args.mlp_steps, "cells": rows}, indent=2)
        + "\n"
    )


def figure(args) -> None:
    """README figure: held-out faces (image, truth, diffusion features, supervised U-Net) and faces
    the model drew itself (no truth), at N = 20 labelled faces."""
    from PIL import Image, ImageDraw, ImageFont
    from safetensors.torch import load_file

    from ddpm.pipelines import generate
    from ddpm.pipelines.part_maps import colour_parts
    from ddpm.pipelines.segmentation import load_segmenter
    from ddpm.training.segmentation import segmentation_unet

    torch.set_num_threads(args.threads)
    run = Path(args.run)
    size = args.size
    segmenter = load_segmenter(MODELS[size], run / "head-20", device="cpu")
    arch = load_experiment_config(SUPERVISED_ARCH[size]).model
    net = segmentation_unet(arch, K, 0.0)
    net.load_state_dict(load_file(str(run / "supervised-20.safetensors")))
    _, _, (tx, ty) = faces(size, test=args.held_out)
    drawn = generate(segmenter.loaded, args.generated, seed=args.seed, progress=False).images
    images = torch.cat([tx[: args.held_out], drawn])
    diffusion = segmenter(images)
    supervised = segment_with_unet(net, images)

    scale, pad, top = args.scale, 4, 18
    tile = size * scale
    columns = ["image", "ground truth", "diffusion features", "supervised U-Net"]
    rows = len(images)
    canvas = Image.new("RGB", (4 * tile + 5 * pad, top + rows * (tile + pad) + pad), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for j, title in enumerate(columns):
        draw.text((pad + j * (tile + pad), 4), title, fill=(0, 0, 0), font=font)
    for i in range(rows):
        rgb = ((images[i].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
        truth = colour_parts(ty[i], K) if i < args.held_out else None
        tiles = [rgb, truth, colour_parts(diffusion[i], K), colour_parts(supervised[i], K)]
        for j, arr in enumerate(tiles):
            x, y = pad + j * (tile + pad), top + i * (tile + pad)
            if arr is None:
                draw.rectangle([x, y, x + tile - 1, y + tile - 1], fill=(235, 235, 235))
                draw.text((x + 6, y + tile // 2 - 6), "(drawn by the model)", fill=(90, 90, 90), font=font)
                continue
            canvas.paste(Image.fromarray(arr).resize((tile, tile), Image.NEAREST), (x, y))
    from ddpm.pipelines.part_maps import with_legend

    out = with_legend(canvas, PARTS)
    out.save(args.out)
    print(f"wrote {args.out}")


ARMS = ("diffusion", "random", "supervised", "pixels", "autoencoder")
ARM_LABELS = {
    "diffusion": "diffusion features",
    "random": "random-weight U-Net features",
    "supervised": "supervised U-Net (from scratch)",
    "pixels": "raw pixels (5×5 + position)",
    "autoencoder": "autoencoder encoder features",
}


def _load(name: str) -> dict | None:
    path = PARTS_DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _crossing(by_n_a: dict, by_n_b: dict) -> str:
    """Where arm b catches up with arm a as N grows (or that it does not within the sweep)."""
    ns = sorted(set(by_n_a) & set(by_n_b))
    ahead = [n for n in ns if by_n_b[n] >= by_n_a[n]]
    return f"from N = {ahead[0]}" if ahead else f"not within N ≤ {ns[-1]}" if ns else "—"


def _draws_summary(table: dict[str, dict[int, float]]) -> list[str]:
    """N = 20 over the seeded draws of labelled faces: each arm's mean (range), and the paired
    differences of diffusion features against each baseline."""
    suffixes = [""] + sorted({a.split("-seed")[1] for a in table if "-seed" in a}, key=int)
    if len(suffixes) < 2:
        return []
    per_draw = {
        base: [table.get(base + (f"-seed{s}" if s else ""), {}).get(20) for s in suffixes]
        for base in ARMS
        if base in table
    }
    lines = [
        "",
        f"N = 20 over {len(suffixes)} draws of the labelled faces (pool seeds 0, {', '.join(suffixes[1:])}):",
        "",
    ]
    for base, values in per_draw.items():
        got = [v for v in values if v is not None]
        if len(got) == len(suffixes):
            lines.append(
                f"- {base}: {100 * sum(got) / len(got):.1f} ({100 * min(got):.1f}–{100 * max(got):.1f})"
            )
    for base in ("supervised", "random", "pixels"):
        pairs = [(d, b) for d, b in zip(per_draw.get("diffusion", []), per_draw.get(base, []), strict=False)]
        diffs = [100 * (d - b) for d, b in pairs if d is not None and b is not None]
        if len(diffs) == len(suffixes):
            lines.append(
                f"- diffusion − {base}: {sum(diffs) / len(diffs):+.1f} points on average, "
                f"{min(diffs):+.1f} at worst"
            )
    return lines


def report(args) -> None:
    result: dict = {"sweeps": {}, "heatmaps": {}}
    md = ["# Segmentation from diffusion features: faces parts, mIoU on held-out faces", ""]
    for size in (32, 64):
        data = _load(f"sweep-{size}")
        if not data:
            continue
        entries = data["entries"]
        result["sweeps"][size] = entries
        table: dict[str, dict[int, float]] = {}
        for e in entries:
            table.setdefault(e["arm"], {})[e["n"]] = e["miou"]
        ns = sorted({e["n"] for e in entries})
        md += [
            f"## {size}×{size} (`{MODELS[size]}`)",
            "",
            "| features | " + " | ".join(f"N = {n}" for n in ns) + " |",
        ]
        md.append("|---|" + "---|" * len(ns))
        main_arms = [a for a in table if "-seed" not in a]
        for arm in sorted(main_arms, key=lambda a: (ARMS.index(a.split("-")[0]), a)):
            label = ARM_LABELS.get(arm, arm.split("-")[0]) + (
                f" ({arm.split('-', 1)[1]})" if "-" in arm else ""
            )
            md.append(
                f"| {label} | "
                + " | ".join(f"{100 * table[arm][n]:.1f}" if n in table[arm] else "" for n in ns)
                + " |"
            )
        md.append("")
        if "diffusion" in table and "supervised" in table:
            where = _crossing(table["diffusion"], table["supervised"])
            md.append(f"- supervised U-Net catches up with diffusion features: {where}")
        if 20 in table.get("diffusion", {}):
            d = table["diffusion"][20]
            for arm in ("supervised", "random"):
                if 20 in table.get(arm, {}):
                    md.append(
                        f"- at N = 20: diffusion − {arm} = {100 * (d - table[arm][20]):+.1f} mIoU points"
                    )
        md += _draws_summary(table)
        at20 = [e for e in entries if e["n"] == 20 and e["arm"] in ("diffusion", "supervised")]
        if at20:
            md += ["", "Per-part IoU at N = 20:", "", "| part | " + " | ".join(e["arm"] for e in at20) + " |"]
            md.append("|---|" + "---|" * len(at20))
            for part in PARTS:
                cells = [e["iou"].get(part) for e in at20]
                md.append(
                    f"| {part} | " + " | ".join("—" if c is None else f"{100 * c:.1f}" for c in cells) + " |"
                )
        md.append("")
    for size in (32, 64):
        heat = _load(f"heatmap-{size}")
        if not heat:
            continue
        result["heatmaps"][size] = heat
        best = sorted(heat["cells"], key=lambda c: -c["miou"])[:5]
        md.append(
            f"Heatmap {size}×{size} (N = {heat['n']}, {heat['validation']} validation faces): best single "
            + ", ".join(f"{c['block']}@t={c['t']} {100 * c['miou']:.1f}" for c in best)
        )
        md.append("")
    path = write_results("segmentation_features", result, md)
    _plot(result, path.with_suffix(".png"))


def _plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweeps, heats = result["sweeps"], result["heatmaps"]
    panels = len(sweeps) + len(heats)
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 4.2), squeeze=False)
    ax_iter = iter(axes[0])
    for size, entries in sweeps.items():
        ax = next(ax_iter)
        for arm in ARMS:
            pts = sorted((e["n"], e["miou"]) for e in entries if e["arm"] == arm)
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", label=ARM_LABELS[arm])
        ax.set_xscale("log")
        ax.set_xlabel("labelled training faces N")
        ax.set_ylabel("mIoU (held-out faces)")
        ax.set_title(f"faces {size}×{size}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for size, heat in heats.items():
        ax = next(ax_iter)
        ts = sorted({c["t"] for c in heat["cells"]})
        blocks = list(dict.fromkeys(c["block"] for c in heat["cells"]))
        grid = [
            [next(c["miou"] for c in heat["cells"] if c["t"] == t and c["block"] == b) for b in blocks]
            for t in ts
        ]
        im = ax.imshow(grid, aspect="auto", cmap="viridis")
        ax.set_xticks(range(len(blocks)), blocks, rotation=60, fontsize=7)
        ax.set_yticks(range(len(ts)), ts)
        ax.set_ylabel("timestep t")
        ax.set_title(f"one block, one t: mIoU ({size}×{size}, N = {heat['n']})")
        fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def _channels(unet: UNet, names: list[str]) -> list[int]:
    from ddpm.models.unet_features import block_channels

    shapes = block_channels(unet)
    return [shapes[n][0] for n in names]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("sweep")
    p.add_argument("--size", type=int, choices=(32, 64), required=True)
    p.add_argument("--out", required=True, help="folder for the N = 20 head and supervised U-Net")
    p.add_argument("--ns", default="5,10,20,50,200")
    p.add_argument("--arms", default="diffusion,random,pixels,autoencoder,supervised")
    p.add_argument("--test", type=int, default=300)
    p.add_argument("--mlp-steps", type=int, default=1000)
    p.add_argument("--supervised-steps", type=int, default=1500)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--tag", default="", help="suffix of the arm names in the results (a variant)")
    p.add_argument("--pool-seed", type=int, default=0, help="seed of the draw of labelled faces")
    p.add_argument("--balanced", action="store_true", help="class-balanced cross-entropy for the MLPs")
    p.set_defaults(handler=sweep)
    p = sub.add_parser("heatmap")
    p.add_argument("--size", type=int, choices=(32, 64), required=True)
    p.add_argument("--n", type=int, default=20)
    p.add_argument("--timesteps", default="0,50,150,250,500,750")
    p.add_argument("--mlp-steps", type=int, default=400)
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(handler=heatmap)
    p = sub.add_parser("report")
    p.set_defaults(handler=report)
    p = sub.add_parser("figure")
    p.add_argument("--run", required=True, help="folder of a sweep (its head-20 and supervised-20)")
    p.add_argument("--size", type=int, choices=(32, 64), default=32)
    p.add_argument("--held-out", type=int, default=5)
    p.add_argument("--generated", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--out", default=str(Path(__file__).parent.parent / "docs/images/segmentation-faces.png"))
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(handler=figure)
    args = parser.parse_args()
    args.handler(args)


if __name__ == "__main__":
    main()
