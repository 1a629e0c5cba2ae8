"""The shipped few-step student: distilled from the shipped teacher, drawing garments in its own
number of network evaluations right after install, and refusing any other sampler."""

from __future__ import annotations

import torch

from ddpm.cli.main import main
from ddpm.eval.domain_classifier import load_domain_classifier
from ddpm.imaging import to_uint8
from ddpm.pipelines import load_model
from ddpm.pipelines.autoencoders import weights_digest
from ddpm.pipelines.generation import generate
from ddpm.samplers import SamplerConfig

STUDENT = "fashion-mnist-4step"


def test_the_student_records_the_shipped_teacher():
    student = load_model(STUDENT, device="cpu")
    teacher = load_model("fashion-mnist", device="cpu")
    record = student.meta["distillation"]
    assert record["method"] == "progressive" and record["student_steps"] == 4
    assert record["teacher"]["source"] == "fashion-mnist"
    assert record["teacher"]["digest"] == weights_digest(teacher.model.state_dict())
    assert student.meta["weights"] == "model"  # its final weights (a progressive student keeps no EMA)


def test_the_student_draws_garments_in_four_network_evaluations():
    loaded = load_model(STUDENT, device="cpu")
    calls = []
    hook = loaded.model.register_forward_hook(lambda module, args, out: calls.append(len(args[0])))
    try:
        images = generate(loaded, 32, seed=0, batch_size=32, progress=False).images
    finally:
        hook.remove()
    assert calls == [32] * 4
    assert images.shape == (32, 1, 32, 32) and torch.isfinite(images).all()
    # the garments are not all one class (no collapse bought with speed)
    _, logits = load_domain_classifier(progress=False).features_and_logits(to_uint8(images))
    assert len(logits.argmax(-1).unique()) >= 5


def test_the_student_lands_where_the_teachers_ode_lands_from_the_same_noise():
    """Distilled from deterministic DDIM, the student's 4 steps from x_T approximate the teacher's
    ODE solution from the same x_T: each image is much nearer the teacher's 50-step DDIM image from
    its own noise than the teacher's images from other noise."""
    student, teacher = load_model(STUDENT, device="cpu"), load_model("fashion-mnist", device="cpu")
    ddim = SamplerConfig(sampler="ddim", steps=50, spacing="trailing", clip_x0=True)
    x = generate(student, 8, seed=0, batch_size=8, progress=False).images
    y = generate(teacher, 8, seed=0, batch_size=8, sampler=ddim, progress=False).images
    distance = (x[:, None] - y[None]).abs().mean(dim=(2, 3, 4))  # (student i, teacher j)
    own = distance.diagonal()
    others = distance[~torch.eye(8, dtype=torch.bool)].view(8, 7)
    assert (own < others.min(dim=1).values).all()
    assert own.mean() < 0.5 * others.mean()


def test_ddpm_sample_uses_the_students_steps_and_refuses_others(tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert main(["sample", STUDENT, "--num", "4", "--out", str(out), "--no-progress"]) == 0
    assert out.is_file()
    capsys.readouterr()
    bad = tmp_path / "bad.png"
    assert main(["sample", STUDENT, "--num", "4", "--steps", "8", "--out", str(bad), "--no-progress"]) != 0
    err = capsys.readouterr().err.strip()
    assert "distilled for 4" in err and len(err.splitlines()) == 1
    assert not bad.exists()
