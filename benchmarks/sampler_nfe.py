"""Quality against network evaluations (NFE) for every sampler on a Fashion-MNIST model.

For each sampler and NFE: N samples from fixed seeds; the domain Fréchet distance to N test
images (the project's classifier features, seconds per point), the share of samples the
classifier recognises with ≥ 90% confidence, and wall time. The floor row is N train images. FID
(Inception, slower) is computed for the 1000-step ancestral baseline and the best sampler at each
NFE. Writes results/sampler_nfe.{json,md} and results/sampler_nfe.png.

    python benchmarks/sampler_nfe.py [--checkpoint fashion-mnist] [--num 300] [--fid-num 300]

On a GPU without the Inception weights, ``--device cuda --save-images sets.npz`` keeps the
images that FID would measure; ``benchmarks/sampler_nfe_fid.py sets.npz`` measures them later.
"""

from __future__ import annotations

import argparse

from common import RESULTS, DomainProbe, timed, write_results

from ddpm.imaging import to_uint8
from ddpm.pipelines import generate, load_model
from ddpm.samplers import SAMPLERS, SamplerConfig


def steps_for(sampler: str, nfe: int) -> int:
    """Heun evaluates the network 2K − 1 times for K steps."""
    return (nfe + 1) // 2 if sampler == "heun" else nfe


def fid(images, reference, net):
    from ddpm.eval import frechet_distance, gaussian_stats

    return frechet_distance(
        *gaussian_stats(net(images, progress=False)), *gaussian_stats(net(reference, progress=False))
    )


def plot(rows, floor, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for name in dict.fromkeys(r["sampler"] for r in rows):
        pts = sorted((r["nfe"], r["domain_fd"]) for r in rows if r["sampler"] == name)
        ax.plot(*zip(*pts, strict=True), marker="o", label=name)
    ax.axhline(floor, color="grey", linestyle="--", label="real vs real")
    ax.set(xscale="log", yscale="log", xlabel="network evaluations", ylabel="domain FD (lower is better)")
    ax.legend(fontsize=8, ncol=2)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="fashion-mnist")
    p.add_argument("--num", type=int, default=300)
    p.add_argument("--nfe", default="5,10,20,50")
    p.add_argument("--nfe-extra", default="100", help="also these NFE for --extra-samplers")
    p.add_argument("--extra-samplers", default="ddim,dpm++2m,unipc-bh2,ancestral")
    p.add_argument("--samplers", default=",".join(s for s in SAMPLERS if s != "ancestral") + ",ancestral")
    p.add_argument("--baseline-steps", type=int, default=1000)
    p.add_argument("--fid-num", type=int, default=0, help="also FID with this many images (0 = off)")
    p.add_argument("--batch-size", type=int, default=150)
    p.add_argument("--device", default="cpu")
    p.add_argument("--save-images", help="write the baseline's and each NFE's best set to this .npz")
    args = p.parse_args()

    loaded = load_model(args.checkpoint, device=args.device)
    probe = DomainProbe(args.num)
    from ddpm.data import load_fashion_mnist

    train = load_fashion_mnist(split="train").images[: args.num]
    floor = probe(train)["domain_fd"]
    rows = []
    variants = []
    for name in args.samplers.split(","):
        variants += (
            [("ddim η=0", name, 0.0), ("ddim η=1", name, 1.0)] if name == "ddim" else [(name, name, 0.0)]
        )
    settings = [(v, n) for v in variants for n in map(int, args.nfe.split(","))]
    extra = set(args.extra_samplers.split(","))
    settings += [(v, n) for v in variants if v[1] in extra for n in map(int, args.nfe_extra.split(",")) if n]
    settings.append((("ancestral", "ancestral", 0.0), args.baseline_steps))
    images_by_key = {}
    for (label, name, eta), nfe in settings:
        config = SamplerConfig(
            **{
                **vars(loaded.config.sample),
                "sampler": name,
                "steps": steps_for(name, nfe),
                "spacing": "auto",
                "eta": eta,
            }
        )
        out, seconds = timed(
            generate, loaded, args.num, seed=0, sampler=config, batch_size=args.batch_size, progress=False
        )
        images = to_uint8(out.images).cpu()
        row = {
            "sampler": label,
            "nfe": nfe,
            "steps": config.steps,
            "seconds": round(seconds, 1),
            **probe(images),
        }
        rows.append(row)
        images_by_key[(row["sampler"], nfe)] = images
        print(
            f"{row['sampler']:14s} NFE {nfe:5d}  FD {row['domain_fd']:8.2f}  "
            f"confident {row['confident']:.1%}  {seconds:6.1f} s",
            flush=True,
        )
    baseline = next(r for r in rows if r["nfe"] == args.baseline_steps and r["sampler"] == "ancestral")
    best = {}
    for r in rows:
        if r["nfe"] != args.baseline_steps and (
            r["nfe"] not in best or r["domain_fd"] < best[r["nfe"]]["domain_fd"]
        ):
            best[r["nfe"]] = r
    if args.save_images:
        import numpy as np

        sets = {
            f"{r['sampler']}@{r['nfe']}": images_by_key[(r["sampler"], r["nfe"])].numpy()
            for r in best.values()
        }
        sets[f"ancestral@{args.baseline_steps}"] = images_by_key[("ancestral", args.baseline_steps)].numpy()
        np.savez_compressed(args.save_images, **sets)
    fids = {}
    if args.fid_num:
        from ddpm.eval.inception import InceptionFeatures

        net = InceptionFeatures()
        reference = probe.reference[: args.fid_num]
        for r in [*best.values(), baseline]:
            r["fid"] = fid(images_by_key[(r["sampler"], r["nfe"])][: args.fid_num], reference, net)
            fids[f"{r['sampler']}@{r['nfe']}"] = r["fid"]
        fids["floor"] = fid(train[: args.fid_num], reference, net)
    plot([r for r in rows if r["nfe"] != args.baseline_steps], floor, RESULTS / "sampler_nfe.png")

    nfes = sorted({r["nfe"] for r in rows if r["nfe"] != args.baseline_steps})
    lines = [
        f"Domain FD (lower is better) of {args.num} samples vs {args.num} Fashion-MNIST test images; "
        f"real-vs-real floor {floor:.2f}; 1000-step ancestral baseline {baseline['domain_fd']:.2f}.",
        "",
        "| sampler | " + " | ".join(f"NFE {n}" for n in nfes) + " |",
        "|---|" + "---:|" * len(nfes),
    ]
    for name in dict.fromkeys(r["sampler"] for r in rows):
        cells = []
        for n in nfes:
            r = next((r for r in rows if r["sampler"] == name and r["nfe"] == n), None)
            cells.append("–" if r is None else f"{r['domain_fd']:.1f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if fids:
        lines += [
            "",
            f"FID ({args.fid_num} samples vs {args.fid_num} test images; Inception protocol of `ddpm eval`):",
            "",
        ]
        lines += [f"- {k}: {v:.2f}" for k, v in fids.items()]
    write_results(
        "sampler_nfe",
        {
            "checkpoint": str(loaded.path),
            "num": args.num,
            "floor_domain_fd": floor,
            "rows": rows,
            "fid": fids,
        },
        lines,
    )


if __name__ == "__main__":
    main()
