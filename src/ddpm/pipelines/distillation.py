"""Distilling a trained model into a few-step student (``ddpm distill``), and the rules for sampling
a student: only with the sampler and steps it was distilled for."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

from ddpm.checkpoints import read_meta
from ddpm.configuration import to_dict
from ddpm.data import load_dataset
from ddpm.errors import UserError
from ddpm.models.preconditioning import diffusion_network
from ddpm.pipelines.autoencoders import weights_digest
from ddpm.pipelines.loading import LoadedModel, load_model
from ddpm.samplers import SamplerConfig
from ddpm.training.consistency_distillation import ConsistencyDistillation
from ddpm.training.distillation import (
    DistillationRun,
    DistillConfig,
    DistillTraining,
    ProgressiveDistillation,
    check_teacher,
)
from ddpm.training.run import TrainResult
from ddpm.training.step_loop import run_loop


def _check_resume(out: Path, identity: dict, distill: DistillConfig) -> None:
    latest = out / "checkpoints" / "latest"
    if not latest.is_file():
        return
    recorded = read_meta(out / "checkpoints" / latest.read_text().strip()).get("distillation", {})
    if recorded.get("teacher", {}).get("digest") != identity["digest"]:
        raise UserError(
            f"cannot resume {out}: it was distilled from another teacher "
            f"({recorded.get('teacher', {}).get('source')}); give that teacher or choose another --out"
        )
    if recorded.get("config") != asdict(distill):
        raise UserError(
            f"cannot resume {out}: its distillation settings were {recorded.get('config')}; keep them"
        )


def distill(
    teacher: str | Path,
    out: str | Path,
    config: DistillConfig,
    train: DistillTraining,
    *,
    resume: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Distil ``teacher`` (a pretrained name, checkpoint or run folder) into a student in ``out``."""
    out = Path(out)
    loaded = load_model(teacher, device="cpu", channels_last=False)
    if loaded.autoencoder is not None:
        raise UserError("distilling latent models is not supported yet; distil a pixel-space model")
    check_teacher(loaded.model, loaded.prediction_type)
    identity = {"source": str(teacher), "digest": weights_digest(loaded.model.state_dict())}
    if resume:
        _check_resume(out, identity, config)
    student_train = train.train_config(config.total_steps)
    if config.method == "progressive":
        diffusion = replace(loaded.config.diffusion, prediction_type="v")
        sample = SamplerConfig(sampler="ddim", steps=config.start_steps, spacing="trailing", clip_x0=True)
    else:
        diffusion = replace(loaded.config.diffusion, prediction_type="x0", preconditioning="consistency")
        sample = SamplerConfig(sampler="consistency", steps=config.sample_steps, spacing="trailing")
    student_config = replace(loaded.config, diffusion=diffusion, train=student_train, sample=sample)
    student = diffusion_network(loaded.config.model, diffusion)
    getattr(student, "net", student).load_state_dict(loaded.model.state_dict())
    run = DistillationRun(
        distill=config,
        train=student_train,
        teacher=loaded.model,
        teacher_prediction=loaded.prediction_type,
        student=student,
        schedule=loaded.schedule,
        full_config=to_dict(student_config),
        teacher_identity=identity,
    )
    images = load_dataset(loaded.config.data).images
    loop = ProgressiveDistillation if config.method == "progressive" else ConsistencyDistillation
    return run_loop(lambda: loop(run, images, out, progress), out, resume, "distillation", student_train)


def check_student_sampler(loaded: LoadedModel, sampler: SamplerConfig) -> None:
    """A distilled student samples only as it was distilled to (one line if not): a progressive
    student with the DDIM steps of its last round, a consistency student with consistency sampling."""
    record = loaded.meta.get("distillation")
    if not record:
        return
    if record["method"] == "consistency":
        if sampler.sampler != "consistency":
            raise UserError(
                "this student is a consistency model; sample it with --sampler consistency "
                "(--steps 1, 2, 4, … network evaluations)"
            )
        return
    n = record["student_steps"]
    ok = sampler.sampler == "ddim" and (sampler.steps or loaded.schedule.num_timesteps) == n
    if not ok or sampler.resolved_spacing != "trailing" or sampler.eta != 0:
        raise UserError(
            f"this student was distilled for {n} deterministic DDIM step(s) on the trailing grid; "
            f"sample it with --sampler ddim --steps {n} --spacing trailing --eta 0 (the default)"
        )
