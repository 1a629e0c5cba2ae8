"""``ddpm info``: describe a checkpoint (configuration, training state, schedule)."""

from __future__ import annotations

import argparse
import json

from ddpm.checkpoints import read_meta
from ddpm.configuration import to_dict
from ddpm.models import count_parameters
from ddpm.models.unet_features import block_channels
from ddpm.pipelines import load_model
from ddpm.pipelines.autoencoders import is_autoencoder, load_autoencoder
from ddpm.pipelines.baselines import FAMILY_NAMES, is_baseline, load_baseline
from ddpm.pipelines.locate import resolve_checkpoint
from ddpm.pipelines.segmentation import HEAD_FOLDER, HEAD_TYPE, is_segmentation_head, load_segmentation_head


def add_parser(sub) -> None:
    p = sub.add_parser(
        "info",
        help="describe a checkpoint",
        description=(
            "Print what a checkpoint holds: model size, training state, diffusion and sampler "
            "(and for a latent model its autoencoder); for an autoencoder its shape and scale factor; "
            "for a GAN, VAE or flow baseline its size and training state."
        ),
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="checkpoint/run folder or pretrained name")
    p.add_argument("--json", action="store_true", help="print everything as JSON")
    p.set_defaults(handler=run)


def describe_autoencoder(args: argparse.Namespace) -> int:
    coder = load_autoencoder(args.checkpoint)
    a, state = coder.config, coder.meta.get("state", {})
    report = {
        "path": str(coder.path),
        "kind": coder.meta.get("kind"),
        "model_type": "autoencoder",
        "parameters": count_parameters(coder.model),
        "downsampling_factor": a.downsampling_factor,
        "latent_shape": [a.latent_channels, a.latent_size, a.latent_size],
        "scale_factor": coder.scale_factor,
        "digest": coder.digest,
        "step": state.get("step"),
        "training_minutes": round((state.get("elapsed_seconds") or 0) / 60, 1),
        "config": to_dict(a),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"checkpoint   {report['path']} ({report['kind']})")
    print(
        f"autoencoder  KL, {report['parameters']:,} parameters, "
        f"{a.in_channels}×{a.image_size}×{a.image_size} → "
        f"{a.latent_channels}×{a.latent_size}×{a.latent_size} (f = {a.downsampling_factor})"
    )
    print(f"latents      scale factor {coder.scale_factor:.5f}, digest {coder.digest[:12]}")
    print(f"training     step {report['step']}, {report['training_minutes']} min")
    return 0


def describe_head(args: argparse.Namespace) -> int:
    head = load_segmentation_head(resolve_checkpoint(args.checkpoint))
    test = head.metrics.get("test") or {}
    report = {
        "path": str(head.path),
        "kind": HEAD_TYPE,
        "diffusion_model": {"source": head.model_source, "digest": head.model_digest},
        "features": to_dict(head.spec),
        "head": to_dict(head.classifier.config),
        "parts": list(head.parts),
        "metrics": head.metrics,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"checkpoint   {report['path']} (segmentation head)")
    print(f"model        features of {head.model_source} (digest {head.model_digest[:12]})")
    s, c = head.spec, head.classifier.config
    print(f"features     t = {list(s.timesteps)}, blocks {', '.join(s.blocks)}, {c.in_features} per pixel")
    print(
        f"head         {c.members} MLPs {list(c.hidden)} → {len(head.parts)} parts: {', '.join(head.parts)}"
    )
    if test:
        faces, labelled = test.get("faces", "?"), head.metrics.get("labelled")
        print(f"held out     mIoU {test['miou']:.3f} on {faces} faces; trained on {labelled} labelled faces")
    return 0


def describe_baseline(args: argparse.Namespace) -> int:
    loaded = load_baseline(args.checkpoint, device="cpu")
    b, state = loaded.baseline, loaded.meta.get("state", {})
    report = {
        "path": str(loaded.path),
        "kind": loaded.meta.get("kind"),
        "model_type": "baseline",
        "family": b.family,
        "parameters": count_parameters(loaded.model),
        "image_shape": list(loaded.image_shape),
        "latent_shape": list(loaded.noise_shape),
        "step": state.get("step"),
        "images_seen": state.get("images_seen"),
        "training_minutes": round((state.get("elapsed_seconds") or 0) / 60, 1),
        "config": to_dict(b),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    c, h, w = loaded.image_shape
    print(f"checkpoint   {report['path']} ({report['kind']})")
    print(f"baseline     {FAMILY_NAMES[b.family]}, {report['parameters']:,} parameters, {c}×{h}×{w} images")
    print(f"sampling     one network pass per image, z of {loaded.noise_shape[0]} numbers")
    print(
        f"training     step {report['step']}, {report['images_seen']} images, "
        f"{report['training_minutes']} min"
    )
    return 0


def run(args: argparse.Namespace) -> int:
    meta = read_meta(resolve_checkpoint(args.checkpoint))
    if is_autoencoder(meta):
        return describe_autoencoder(args)
    if is_baseline(meta):
        return describe_baseline(args)
    if is_segmentation_head(meta):
        return describe_head(args)
    loaded = load_model(args.checkpoint, device="cpu")
    state = loaded.meta.get("state", {})
    report = {
        "path": str(loaded.path),
        "kind": loaded.meta.get("kind"),
        "parameters": count_parameters(loaded.model),
        "step": state.get("step"),
        "images_seen": state.get("images_seen"),
        "training_minutes": round((state.get("elapsed_seconds") or 0) / 60, 1),
        "terminal_alpha_bar": loaded.schedule.terminal_alpha_bar,
        "config": to_dict(loaded.config),
    }
    if loaded.autoencoder is not None:
        report["autoencoder"] = loaded.autoencoder.identity()
    blocks = block_channels(loaded.model)
    report["feature_blocks"] = {n: {"channels": ch, "resolution": res} for n, (ch, res) in blocks.items()}
    own_head = loaded.path / HEAD_FOLDER
    report["segmentation_head"] = str(own_head) if (own_head / "checkpoint.json").is_file() else None
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    c = loaded.config
    print(f"checkpoint   {report['path']} ({report['kind']})")
    print(
        f"model        U-Net, {report['parameters']:,} parameters, {c.model.in_channels}×"
        f"{c.model.image_size}×{c.model.width}, "
        f"widths {c.model.base_channels}×{list(c.model.channel_mult)}, "
        f"attention at {list(c.model.attention_resolutions)}"
    )
    extras = []
    if c.diffusion.preconditioning == "edm":
        extras.append(f"EDM preconditioning, σ_data {c.diffusion.sigma_data:g}")
    if c.diffusion.preconditioning == "consistency":
        extras.append("a consistency function f(x, σ_min) = x")
    if c.diffusion.learned_variance:
        extras.append("learned variance")
    print(
        f"diffusion    {c.diffusion.schedule} schedule, T = {c.diffusion.num_timesteps}, predicts "
        f"{c.diffusion.prediction_type}, ᾱ_T = {report['terminal_alpha_bar']:.3g}"
        + "".join(f", {e}" for e in extras)
    )
    student = loaded.meta.get("distillation")
    if student:
        print(
            f"distilled    {student['method']} from {student['teacher']['source']}, round "
            f"{student['round'] + 1} of {student['rounds']}: {student['student_steps']}-step DDIM student"
        )
    elif report["kind"] == "training":
        t = c.train
        ema = f"{t.ema} EMA " + (
            f"σ_rel {t.ema_sigma_rel:g}" if t.ema == "power" else f"decay {t.ema_decay:g}"
        )
        print(
            f"recipe       {t.noise_levels} noise levels, {t.loss_weighting} loss weighting, {ema}, "
            f"lr {t.lr:g} ({t.lr_schedule}), batch {t.batch_size}"
        )
    if report["kind"] == "diffusers":
        print(
            f"training     not recorded (a diffusers folder; scheduler {loaded.meta.get('scheduler_class')})"
        )
    else:
        print(
            f"training     step {report['step']}, {report['images_seen']} images, "
            f"{report['training_minutes']} min, "
            f"data {c.data.dataset}"
        )
    if loaded.autoencoder is not None:
        ae = loaded.autoencoder
        print(
            f"latent       decoded by {ae.source} (f = {ae.config.downsampling_factor}, "
            f"scale {ae.scale_factor:.5f}) to {'×'.join(map(str, loaded.image_shape))}"
        )
    steps = c.sample.steps or c.diffusion.num_timesteps
    print(
        "blocks       " + ", ".join(f"{n} {ch}@{res}" for n, (ch, res) in blocks.items()) + " (channels@size)"
    )
    if report["segmentation_head"]:
        print(f"segmentation head {report['segmentation_head']} ('ddpm segment {args.checkpoint} --input …')")
    print(f"sampler      {c.sample.sampler}, {steps} steps ({c.sample.spacing}), clip x̂_0 {c.sample.clip_x0}")
    return 0
