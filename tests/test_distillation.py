"""Progressive distillation: the two-teacher-step target, the nested grids, training, resume and the
student's sampler rules."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from ddpm.checkpoints import read_meta, read_tensors
from ddpm.cli.main import main
from ddpm.models import UNet
from ddpm.process.config import DiffusionConfig
from ddpm.process.distillation import ddim_step, progressive_target
from ddpm.samplers.spacing import spaced_timesteps
from ddpm.schedules import make_schedule
from ddpm.training.distillation import (
    DistillationRun,
    DistillConfig,
    DistillSettings,
    ProgressiveDistillation,
    distillation_grid,
)
from ddpm.validation import InvalidValue
from tests.helpers import digits_images, tiny_config


def test_one_step_to_the_target_lands_where_the_teacher_does():
    gen = torch.Generator().manual_seed(0)
    xt, xs = torch.randn(2, 5, generator=gen, dtype=torch.float64)
    alpha_t, sigma_t, alpha_s, sigma_s = 0.3, (1 - 0.09) ** 0.5, 0.8, 0.6
    target = progressive_target(xt, xs, alpha_t, sigma_t, alpha_s, sigma_s)
    assert torch.allclose(ddim_step(target, xt, alpha_t, sigma_t, alpha_s, sigma_s), xs, atol=1e-12)
    assert torch.equal(progressive_target(xt, xs, alpha_t, sigma_t, 1.0, 0.0), xs)  # the clean end


@pytest.mark.parametrize("T", [100, 1000])
def test_each_grid_is_every_other_level_of_the_next_finer_one(T):
    for n in (1, 2, 4, 8, 16, 32, 64):
        if 2 * n > T:
            continue
        assert torch.equal(distillation_grid(T, n), distillation_grid(T, 2 * n)[::2])
        assert torch.equal(distillation_grid(T, n), spaced_timesteps(T, n, "trailing").flip(0))


class _LinearTeacher(torch.nn.Module):
    """ε̂ = c · x_t: a teacher whose two DDIM steps can be written out by hand."""

    def __init__(self, c: float):
        super().__init__()
        self.c = c
        self.config = None

    def forward(self, x, t):
        return self.c * x


def test_the_target_is_two_teacher_ddim_steps_computed_by_hand():
    schedule = make_schedule(DiffusionConfig(num_timesteps=100, beta_end=0.2))
    run = DistillationRun(
        distill=DistillConfig(start_steps=4, final_steps=4, round_steps=10),
        train=tiny_config().train,
        teacher=_LinearTeacher(0.4),
        teacher_prediction="eps",
        student=UNet(tiny_config().model),
        schedule=schedule,
        full_config={},
        teacher_identity={},
    )
    loop = ProgressiveDistillation(run, digits_images(8), "unused", progress=False)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.rand(3, 1, 8, 8, generator=gen) * 2 - 1
    eps = torch.randn(3, 1, 8, 8, generator=gen)
    i = torch.tensor([0, 2, 3])  # the first level, a middle one, the last (it ends on the clean image)
    xt, t, target = loop.target(x0, i, eps)
    fine = [round(100 - 12.5 * j) - 1 for j in range(8)]  # the teacher's levels, written out
    a, s = schedule.sqrt_alpha_bar.float(), schedule.sqrt_one_minus_alpha_bar.float()
    for k, level in enumerate(i.tolist()):
        t0, tm = fine[2 * level], fine[2 * level + 1]
        assert int(t[k]) == t0
        x = a[t0] * x0[k] + s[t0] * eps[k]
        x0_hat = ((x - s[t0] * 0.4 * x) / a[t0]).clamp(-1, 1)
        e = (x - a[t0] * x0_hat) / s[t0]
        xm = a[tm] * x0_hat + s[tm] * e
        x0_m = ((xm - s[tm] * 0.4 * xm) / a[tm]).clamp(-1, 1)
        if level == 3:
            expected = x0_m  # the last student step ends on the clean image
        else:
            ts = fine[2 * level + 2]
            em = (xm - a[tm] * x0_m) / s[tm]
            xs = a[ts] * x0_m + s[ts] * em
            expected = (xs - s[ts] / s[t0] * x) / (a[ts] - s[ts] / s[t0] * a[t0])
        assert torch.allclose(target[k], expected, atol=1e-4), level


def test_distill_config_rules():
    with pytest.raises(InvalidValue, match="power of two"):
        DistillConfig(start_steps=6)
    with pytest.raises(InvalidValue, match="final_steps"):
        DistillConfig(start_steps=4, final_steps=8)
    assert DistillConfig(start_steps=32, final_steps=1).rounds == 6


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher")
    assert (
        main(["train", "--config", "digits-tiny", "--out", str(out), "--train.steps", "150", "--no-progress"])
        == 0
    )
    return out


def _distill(teacher, out, *extra):
    args = [
        "distill",
        str(teacher),
        "--out",
        str(out),
        "--distill.start_steps",
        "4",
        "--distill.final_steps",
        "2",
    ]
    args += [
        "--distill.round_steps",
        "20",
        "--train.sample_every",
        "0",
        "--train.log_every",
        "5",
        "--no-progress",
    ]
    return main([*args, "--train.checkpoint_every", "10", "--train.lr", "1e-3", *extra])


def test_a_student_learns_and_samples_only_with_its_own_steps(teacher, tmp_path, capsys):
    assert _distill(teacher, tmp_path / "s") == 0
    log = [json.loads(line) for line in (tmp_path / "s" / "log.jsonl").read_text().splitlines()]
    first_round = [r["loss"] for r in log if r["step"] <= 20]
    assert first_round[-1] < first_round[0]  # the student moves toward the two-step targets
    assert (
        main(["sample", str(tmp_path / "s"), "--num", "4", "--out", str(tmp_path / "g.png"), "--no-progress"])
        == 0
    )
    capsys.readouterr()
    for bad in (["--steps", "4"], ["--sampler", "ancestral"], ["--eta", "1"]):
        assert (
            main(["sample", str(tmp_path / "s"), "--num", "4", "--out", str(tmp_path / "b.png"), *bad]) != 0
        )
        err = capsys.readouterr().err
        assert "distilled for 2" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "b.png").exists()
    # the exported student keeps its record, and its rule
    assert main(["export", str(tmp_path / "s"), "--out", str(tmp_path / "e")]) == 0
    assert read_meta(tmp_path / "e")["weights"] == "model"  # a student keeps no EMA: its own weights
    assert (
        main(["sample", str(tmp_path / "e"), "--num", "2", "--steps", "8", "--out", str(tmp_path / "c.png")])
        != 0
    )


def test_a_resumed_distillation_across_a_round_boundary_is_exact(teacher, tmp_path):
    assert _distill(teacher, tmp_path / "whole") == 0
    # a run stopped after the first round (its checkpoint at step 20), then continued
    whole = tmp_path / "whole" / "checkpoints" / "step-0000040"
    import shutil

    shutil.copytree(tmp_path / "whole", tmp_path / "part")
    for later in ("step-0000030", "step-0000040"):
        shutil.rmtree(tmp_path / "part" / "checkpoints" / later)
    (tmp_path / "part" / "checkpoints" / "latest").write_text("step-0000020\n")
    assert _distill(teacher, tmp_path / "part", "--resume") == 0
    resumed = tmp_path / "part" / "checkpoints" / "step-0000040"
    for group in ("model", "previous"):
        a, b = read_tensors(whole, group), read_tensors(resumed, group)
        assert all(torch.equal(a[k], b[k]) for k in a), group


def test_resume_refuses_another_teacher_and_bad_teachers_are_named(teacher, tmp_path, capsys):
    assert _distill(teacher, tmp_path / "s", "--distill.round_steps", "10") == 0
    other = tmp_path / "other"
    assert (
        main(["train", "--config", "digits-tiny", "--out", str(other), "--train.steps", "5", "--no-progress"])
        == 0
    )
    capsys.readouterr()
    assert _distill(other, tmp_path / "s", "--resume", "--distill.round_steps", "10") != 0
    assert "another teacher" in capsys.readouterr().err
    cls = tmp_path / "cls"
    assert (
        main(
            [
                "train",
                "--config",
                "digits-class-tiny",
                "--out",
                str(cls),
                "--train.steps",
                "2",
                "--no-progress",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert _distill(cls, tmp_path / "c") != 0
    assert "unconditional" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_settings_defaults_are_the_documented_ones():
    s = DistillSettings()
    assert (s.train.lr, s.train.batch_size, s.distill.start_steps) == (1e-4, 32, 32)
    assert replace(s.distill, final_steps=4).rounds == 4


# -- consistency distillation -----------------------------------------------------------------------
def test_a_consistency_function_is_the_identity_at_sigma_min():
    """f(x, σ_min) = x whatever the network says (the boundary condition), and f → D as σ grows."""
    from ddpm.models.preconditioning import ConsistencyFunction
    from ddpm.process.consistency import consistency_skip

    schedule = make_schedule(DiffusionConfig(num_timesteps=100, beta_end=0.2))
    f = ConsistencyFunction(UNet(tiny_config().model), schedule, sigma_data=0.5)
    for p in f.parameters():
        torch.nn.init.normal_(p, std=0.3)  # a network that says anything
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    alpha0 = float(schedule.sqrt_alpha_bar[0])
    with torch.no_grad():
        assert torch.allclose(f(x * alpha0, torch.zeros(2)), x, atol=1e-5)
    sigma = torch.tensor([float(schedule.sigmas[0]), 1.0, 50.0], dtype=torch.float64)
    skip = consistency_skip(sigma, float(schedule.sigmas[0]), 0.5)
    assert skip[0] == 1 and skip[1] == pytest.approx(0.25 / ((1 - float(schedule.sigmas[0])) ** 2 + 0.25))
    assert skip[2] < 1e-3


def test_pseudo_huber_by_hand():
    from ddpm.training.consistency_distillation import pseudo_huber

    a = torch.zeros(2, 1, 2, 2)
    b = torch.tensor([[[[3.0, 4.0], [0.0, 0.0]]], [[[0.0, 0.0], [0.0, 0.0]]]])
    c = 0.00054 * 2  # √4 dimensions
    got = pseudo_huber(a, b)
    assert got[0].item() == pytest.approx((25 + c**2) ** 0.5 - c) and got[1].item() == pytest.approx(0.0)


def test_consistency_distillation_moves_its_target_network_by_the_ema(teacher, tmp_path, capsys):
    """After each step the target network is μ θ⁻ + (1 − μ) θ of the new student weights; the
    student samples with --sampler consistency only."""
    from ddpm.pipelines.distillation import distill
    from ddpm.training import consistency_distillation as cd

    seen = []
    original = cd.ConsistencyDistillation.train_step

    def step(self):
        before = [p.detach().clone() for p in self.target_net.parameters()]
        record = original(self)
        after = list(self.target_net.parameters())
        student = list(self.student.parameters())
        seen.append(
            max(
                (a - (0.9 * b + 0.1 * s)).abs().max().item()
                for a, b, s in zip(after, before, student, strict=True)
            )
        )
        return record

    cd.ConsistencyDistillation.train_step = step
    try:
        settings = DistillSettings()
        config = replace(settings.distill, method="consistency", round_steps=6, target_ema=0.9, levels=6)
        train = replace(settings.train, sample_every=0, checkpoint_every=3, lr=1e-3)
        distill(teacher, tmp_path / "cd", config, train, progress=False)
    finally:
        cd.ConsistencyDistillation.train_step = original
    assert len(seen) == 6 and max(seen) < 1e-6
    out = tmp_path / "g.png"
    args = ["sample", str(tmp_path / "cd"), "--num", "3", "--out", str(out), "--no-progress"]
    assert main([*args, "--steps", "2"]) == 0
    capsys.readouterr()
    assert main([*args, "--sampler", "ddim"]) != 0
    assert "consistency model" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "cd")]) == 0
